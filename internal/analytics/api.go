package analytics

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferry-iot/ferry/internal/analytics/query"
)

// APIOptions configure the REST API.
type APIOptions struct {
	// AdminPassword is the password of user admin (HTTP Basic), as for
	// the registry API; empty refuses every request.
	AdminPassword string
	Logger        *slog.Logger
}

// Handler serves the analytics REST API under /v1/analytics/:
//
//	GET    /v1/analytics/<tenant>/queries                 the tenant's queries
//	PUT    /v1/analytics/<tenant>/queries/<name>          create or replace (YAML or JSON body)
//	GET    /v1/analytics/<tenant>/queries/<name>          one query and its counters
//	DELETE /v1/analytics/<tenant>/queries/<name>          stop and forget it
//	GET    /v1/analytics/<tenant>/queries/<name>/explain  plan, keys, open windows, state bytes
//	GET    /v1/analytics/<tenant>/queries/<name>/stream   rows as Server-Sent Events
//	GET    /v1/analytics/<tenant>/queries/<name>/latest   the last row of ?key=, or of every key
//
// Errors are application/problem+json (RFC 9457).
func (s *Service) Handler(opts APIOptions) http.Handler {
	a := &api{s: s, log: opts.Logger, pwSum: sha256.Sum256([]byte(opts.AdminPassword)), open: opts.AdminPassword != ""}
	if a.log == nil {
		a.log = slog.Default()
	}
	mux := http.NewServeMux()
	const q = "/v1/analytics/{tenant}/queries"
	mux.HandleFunc("GET "+q, a.list)
	mux.HandleFunc("PUT "+q+"/{name}", a.put)
	mux.HandleFunc("GET "+q+"/{name}", a.get)
	mux.HandleFunc("DELETE "+q+"/{name}", a.delete)
	mux.HandleFunc("GET "+q+"/{name}/explain", a.explain)
	mux.HandleFunc("GET "+q+"/{name}/stream", a.stream)
	mux.HandleFunc("GET "+q+"/{name}/latest", a.latest)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "no such resource: "+r.URL.Path)
	})
	return a.auth(mux)
}

type api struct {
	s     *Service
	log   *slog.Logger
	pwSum [32]byte
	open  bool
}

// AdminUser is the user of the admin credential.
const AdminUser = "admin"

func (a *api) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		sum := sha256.Sum256([]byte(pw))
		if !ok || !a.open || user != AdminUser || subtle.ConstantTimeCompare(sum[:], a.pwSum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="ferry", charset="UTF-8"`)
			problem(w, http.StatusUnauthorized, "authentication required: HTTP Basic, user admin")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// problem writes an RFC 9457 problem; "error" repeats the detail for
// clients of the registry API's format.
func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail, "error": detail,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Info is a query as the API shows it.
type Info struct {
	*query.Spec
	Status  string    `json:"status"`
	Started time.Time `json:"started"`
	Stats   Stats     `json:"stats"`
	Keys    int64     `json:"keys"`
	Windows int64     `json:"open_windows"`
}

func (a *api) info(r *running) Info {
	return Info{Spec: r.spec, Status: "running", Started: r.started, Stats: r.statsSnapshot(),
		Keys: r.limits.Keys(), Windows: r.limits.Windows()}
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	out := []Info{}
	for _, spec := range a.s.List(tenant) {
		if q, err := a.s.get(tenant, spec.Name); err == nil {
			out = append(out, a.info(q))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": len(out), "result": out})
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	q, err := a.s.get(r.PathValue("tenant"), r.PathValue("name"))
	if err != nil {
		a.notFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, a.info(q))
}

func (a *api) notFound(w http.ResponseWriter, r *http.Request) {
	problem(w, http.StatusNotFound, fmt.Sprintf("not found: no query %s in tenant %s", r.PathValue("name"), r.PathValue("tenant")))
}

// maxBody bounds a query document.
const maxBody = 1 << 20

func (a *api) put(w http.ResponseWriter, r *http.Request) {
	tenant, name := r.PathValue("tenant"), r.PathValue("name")
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		problem(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if len(body) > maxBody {
		problem(w, http.StatusRequestEntityTooLarge, "a query document is at most 1 MiB")
		return
	}
	spec, err := parseForPath(body, tenant, name)
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	created, err := a.s.Apply(spec, true)
	switch {
	case errors.Is(err, ErrClosed):
		problem(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	q, err := a.s.get(tenant, name)
	if err != nil {
		a.notFound(w, r)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", r.URL.Path)
	}
	writeJSON(w, status, a.info(q))
}

// parseForPath reads a query document for PUT .../<tenant>/queries/<name>:
// one without name or tenant takes them from the path, one naming others
// is refused.
func parseForPath(body []byte, tenant, name string) (*query.Spec, error) {
	spec, err := query.DecodeSpec(body)
	if err != nil {
		return nil, err
	}
	if spec.Name == "" {
		spec.Name = name
	}
	if spec.Tenant == "" {
		spec.Tenant = tenant
	}
	if spec.Name != name {
		return nil, fmt.Errorf("the document names query %q, the path %q", spec.Name, name)
	}
	if spec.Tenant != tenant {
		return nil, fmt.Errorf("the document is for tenant %q, the path for %q", spec.Tenant, tenant)
	}
	return spec, spec.Validate()
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) {
	if err := a.s.Delete(r.PathValue("tenant"), r.PathValue("name")); err != nil {
		a.notFound(w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) explain(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	e, err := a.s.Explain(ctx, r.PathValue("tenant"), r.PathValue("name"))
	switch {
	case errors.Is(err, ErrNotFound):
		a.notFound(w, r)
	case err != nil:
		problem(w, http.StatusServiceUnavailable, "the query did not answer: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, e)
	}
}

func (a *api) latest(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	rows, err := a.s.Latest(r.PathValue("tenant"), r.PathValue("name"), key)
	if err != nil {
		a.notFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if key != "" {
		if len(rows) == 0 {
			problem(w, http.StatusNotFound, fmt.Sprintf("not found: no row yet for key %q", key))
			return
		}
		w.Write(append(rows[0], '\n'))
		return
	}
	w.Write([]byte("["))
	for i, b := range rows {
		if i > 0 {
			w.Write([]byte(","))
		}
		w.Write(b)
	}
	w.Write([]byte("]\n"))
}

// sseHeartbeat is the period of SSE comments that keep proxies from
// closing a quiet stream.
const sseHeartbeat = 15 * time.Second

// stream serves the rows as Server-Sent Events: event "row", id the
// row's id, data its JSON. The latest row of each key comes first.
func (a *api) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		problem(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	sub, latest, err := a.s.Subscribe(r.PathValue("tenant"), r.PathValue("name"), 256)
	if err != nil {
		a.notFound(w, r)
		return
	}
	defer sub.Cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) error {
		var id struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(b, &id)
		_, err := fmt.Fprintf(w, "id: %s\nevent: row\ndata: %s\n\n", id.ID, b)
		return err
	}
	for _, b := range latest {
		if send(b) != nil {
			return
		}
	}
	fl.Flush()
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	for {
		select {
		case b, ok := <-sub.C:
			if !ok {
				return // the query stopped
			}
			if send(b) != nil {
				return
			}
			for range len(sub.C) {
				if b, ok = <-sub.C; !ok || send(b) != nil {
					return
				}
			}
			fl.Flush()
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-r.Context().Done():
			return
		}
	}
}
