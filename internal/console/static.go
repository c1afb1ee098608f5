package console

import (
	"embed"
	"io/fs"
	"net/http"
)

// The application: plain HTML, CSS and JavaScript, no build step, and uPlot
// (static/vendor, see its README) for the plots.
//
//go:embed static
var embedded embed.FS

func staticFiles() fs.FS {
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}

// staticHandler serves the application under /console/, with headers that
// keep other sites from framing it and the browser from running anything
// that does not come from Ferry.
func (c *Console) staticHandler() http.Handler {
	files := http.StripPrefix("/console/", http.FileServerFS(c.static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		// uPlot sets style attributes on its elements: style-src needs
		// 'unsafe-inline'; scripts do not.
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
