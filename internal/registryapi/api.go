// Package registryapi is Ferry's device registry management HTTP API,
// compatible with version 1 of Eclipse Hono's device registry management API
// (/v1/tenants, /v1/devices, /v1/credentials).
//
// # Basics
//
// [New] returns an http.Handler for the whole /v1 tree; the node mounts it on
// its management listener. Every request needs HTTP Basic authentication as
// user "admin" with [Options.AdminPassword]; [LoadOrCreateAdminPassword]
// keeps a generated password in the data directory for nodes started without
// one. The OpenAPI document is served, without authentication, at
// /v1/openapi.yaml.
//
// Conventions, as in Hono: 201 with Location, ETag and {"id": ...} on
// create; 200 with ETag on read; 204 with ETag on update; 204 on delete;
// If-Match for optimistic locking (412 when stale); 400 for invalid input,
// 401 without the admin credential, 403 when a registration limit is hit,
// 404 for a missing record (and for a search without results), 409 for a
// duplicate, 413 for an oversized body. Error bodies are {"error": "..."}.
//
// # Caveats
//
//   - Password secrets may be given in plain text (pwd-plain); they are
//     hashed before they are stored, and no read returns hashes, salts or
//     keys.
//   - With an empty admin password every request is refused: the API is
//     never open.
package registryapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/ferry-iot/ferry/docs/openapi"
	"github.com/ferry-iot/ferry/internal/registry"
)

// AdminUser is the user name of the admin credential.
const AdminUser = "admin"

// DefaultMaxBodyBytes bounds request bodies unless Options say otherwise.
const DefaultMaxBodyBytes = 1 << 20

// Options configure the API handler.
type Options struct {
	// AdminPassword is the password of user "admin". Empty refuses every
	// request.
	AdminPassword string
	// Logger receives internal errors (500). Default: slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies (413 beyond). Default 1 MiB.
	MaxBodyBytes int64
}

type api struct {
	reg     *registry.Registry
	log     *slog.Logger
	maxBody int64
	// pwSum is the SHA-256 of the admin password; comparing digests keeps
	// the comparison constant-time whatever the lengths.
	pwSum [32]byte
	open  bool
}

// New returns the handler of the /v1 API over reg.
func New(reg *registry.Registry, opts Options) http.Handler {
	a := &api{
		reg:     reg,
		log:     opts.Logger,
		maxBody: opts.MaxBodyBytes,
		pwSum:   sha256.Sum256([]byte(opts.AdminPassword)),
		open:    opts.AdminPassword != "",
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, a.auth(h)) }

	handle("POST /v1/tenants", a.createTenant)
	handle("GET /v1/tenants", a.searchTenants)
	handle("POST /v1/tenants/{tenant}", a.createTenant)
	handle("GET /v1/tenants/{tenant}", a.getTenant)
	handle("PUT /v1/tenants/{tenant}", a.updateTenant)
	handle("DELETE /v1/tenants/{tenant}", a.deleteTenant)

	handle("POST /v1/devices/{tenant}", a.createDevice)
	handle("GET /v1/devices/{tenant}", a.searchDevices)
	handle("DELETE /v1/devices/{tenant}", a.deleteAllDevices)
	handle("POST /v1/devices/{tenant}/{device}", a.createDevice)
	handle("GET /v1/devices/{tenant}/{device}", a.getDevice)
	handle("PUT /v1/devices/{tenant}/{device}", a.updateDevice)
	handle("DELETE /v1/devices/{tenant}/{device}", a.deleteDevice)

	handle("GET /v1/credentials/{tenant}/{device}", a.getCredentials)
	handle("PUT /v1/credentials/{tenant}/{device}", a.setCredentials)

	mux.HandleFunc("GET /v1/openapi.yaml", serveOpenAPI)

	// Method-less patterns are less specific than the ones above, so they
	// only catch the methods not served: 405 with Allow, in the API's error
	// format rather than the mux's plain text.
	for path, allow := range map[string]string{
		"/v1/tenants":                       "GET, POST",
		"/v1/tenants/{tenant}":              "GET, POST, PUT, DELETE",
		"/v1/devices/{tenant}":              "GET, POST, DELETE",
		"/v1/devices/{tenant}/{device}":     "GET, POST, PUT, DELETE",
		"/v1/credentials/{tenant}/{device}": "GET, PUT",
		"/v1/openapi.yaml":                  "GET, HEAD",
	} {
		mux.Handle(path, a.auth(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method not allowed; allowed: "+allow)
		}))
	}
	mux.Handle("/", a.auth(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such resource: "+r.URL.Path)
	}))
	return mux
}

// auth requires the admin credential.
func (a *api) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		sum := sha256.Sum256([]byte(pw))
		good := subtle.ConstantTimeCompare(sum[:], a.pwSum[:]) == 1
		if !ok || !a.open || user != AdminUser || !good {
			w.Header().Set("WWW-Authenticate", `Basic realm="ferry", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "authentication required: HTTP Basic, user admin")
			return
		}
		h(w, r)
	})
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openapi.RegistryV1)
}

// writeError writes Hono's error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// fail maps a registry error to its status.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, registry.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, registry.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, registry.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, registry.ErrPrecondition):
		status = http.StatusPreconditionFailed
	case errors.Is(err, registry.ErrLimitExceeded):
		status = http.StatusForbidden
	}
	if status == http.StatusInternalServerError {
		a.log.Error("registry API", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, status, "internal error")
		return
	}
	writeError(w, status, err.Error())
}

// errBody is a request body problem with its status (400 or 413).
type errBody struct {
	status int
	msg    string
}

func (e *errBody) Error() string { return e.msg }

// readBody returns the request body, which must be JSON when present.
func (a *api) readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, a.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &errBody{http.StatusRequestEntityTooLarge, "request body larger than " + itoa(a.maxBody) + " bytes"}
		}
		return nil, &errBody{http.StatusBadRequest, "reading the request body: " + err.Error()}
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, &errBody{http.StatusBadRequest, "Content-Type must be application/json"}
	}
	return body, nil
}

// body reads the request body and answers the request itself on failure.
func (a *api) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := a.readBody(r)
	if err != nil {
		var e *errBody
		errors.As(err, &e)
		writeError(w, e.status, e.msg)
		return nil, false
	}
	return b, true
}

// ifMatch returns the expected resource version from If-Match: "" when
// absent, "*" for any. Strong and weak, quoted and bare entity tags are
// accepted: Hono's clients echo the ETag as they received it.
func ifMatch(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	v = strings.TrimPrefix(v, "W/")
	return strings.Trim(v, `"`)
}

func setETag(w http.ResponseWriter, version string) {
	w.Header().Set("ETag", `"`+version+`"`)
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
