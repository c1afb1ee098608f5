package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// proxy forwards /console/api/v1/... to the node's /v1 API (the device
// registry, and the analytics when they are there) as user admin, after
// checking that the session may use the tenant the path names. So the
// console uses the very API scripts use, and the browser never holds the
// admin password.
//
// Every /v1 path but two names its tenant second: /v1/tenants/<t>,
// /v1/devices/<t>/..., /v1/credentials/<t>/..., /v1/analytics/<t>/....
// The tenant list (/v1/tenants) and creating a tenant without an id are
// for sessions of every tenant; an application user's tenant list is
// made of its tenants' entries.
func (c *Console) proxy(w http.ResponseWriter, r *http.Request, s *session) {
	if c.opts.Upstream == nil {
		writeError(w, http.StatusNotFound, "no /v1 API on this node")
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/console/api")
	// Split the escaped path: a tenant id may hold an escaped slash.
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/console/api/v1/"), "/")
	switch {
	case rest == "/v1/openapi.yaml":
	case len(parts) == 1 && parts[0] == "tenants":
		if !s.admin() {
			if r.Method == http.MethodGet {
				c.scopedTenants(w, r, s)
				return
			}
			writeError(w, http.StatusForbidden, "only a user of every tenant may create tenants without an id")
			return
		}
	case len(parts) >= 2 && parts[1] != "":
		t, err := url.PathUnescape(parts[1])
		if err != nil || !s.allows(t) {
			writeError(w, http.StatusNotFound, errForbidden.Error()+": "+parts[1])
			return
		}
		if !s.admin() && parts[0] == "tenants" && r.Method == http.MethodPost {
			writeError(w, http.StatusForbidden, "only a user of every tenant may create tenants")
			return
		}
	default:
		writeError(w, http.StatusNotFound, "no such resource: "+rest)
		return
	}
	c.forward(w, r, rest, strings.TrimPrefix(r.URL.EscapedPath(), "/console/api"))
}

// forward serves r as path (rawPath escaped) on the upstream, as user
// admin.
func (c *Console) forward(w http.ResponseWriter, r *http.Request, path, rawPath string) {
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = path, rawPath
	r2.RequestURI = r2.URL.RequestURI()
	// The console's own credentials stay here.
	r2.Header.Del("Cookie")
	r2.Header.Del(CSRFHeader)
	r2.Header.Del("Authorization")
	r2.SetBasicAuth(AdminUser, c.opts.AdminPassword)
	c.opts.Upstream.ServeHTTP(w, r2)
}

// scopedTenants answers GET /v1/tenants for an application user: the
// registry entries of its tenants, in the registry API's search format.
func (c *Console) scopedTenants(w http.ResponseWriter, r *http.Request, s *session) {
	result := []json.RawMessage{}
	for _, t := range s.tenants {
		rec := &recorder{header: http.Header{}}
		get, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/v1/tenants/"+url.PathEscape(t), nil)
		if err != nil {
			continue
		}
		c.forward(rec, get, "/v1/tenants/"+t, "/v1/tenants/"+url.PathEscape(t))
		if rec.code != http.StatusOK {
			continue // not in the registry (yet)
		}
		var entry map[string]any
		if json.Unmarshal(rec.body.Bytes(), &entry) != nil {
			continue
		}
		entry["id"] = t
		b, _ := json.Marshal(entry)
		result = append(result, b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": len(result), "result": result})
}

// recorder is the ResponseWriter of a request the console makes of the
// upstream for itself.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
