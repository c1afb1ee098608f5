package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// AdminUser is the user name of the admin login, the registry API's.
const AdminUser = "admin"

// CookieName is the session cookie; CSRFHeader carries the session's CSRF
// token on changes.
const (
	CookieName = "ferry_console"
	CSRFHeader = "X-CSRF-Token"
)

// maxSessions bounds the logins held in memory.
const maxSessions = 10_000

// session is one login.
type session struct {
	user string
	// tenants the user may see; nil for every tenant (admin, or an
	// application user of "*").
	tenants []string
	csrf    string
	// basic marks a request authenticated by HTTP Basic rather than a
	// session cookie (not stored).
	basic   bool
	expires time.Time // guarded by users.mu
}

// allows reports whether the session may see and change tenant.
func (s *session) allows(tenant string) bool {
	return s.tenants == nil || slices.Contains(s.tenants, tenant)
}

// admin reports whether the session sees every tenant.
func (s *session) admin() bool { return s.tenants == nil }

// users checks passwords and holds the sessions.
type users struct {
	adminSum [32]byte // SHA-256 of the admin password: constant-time comparison whatever the length
	adminOK  bool
	apps     map[string]User
	ttl      time.Duration
	now      func() time.Time
	// bcrypts bounds the bcrypt checks running at once: each costs tens
	// of milliseconds of CPU.
	bcrypts chan struct{}

	mu       sync.Mutex
	sessions map[string]*session // by the cookie's token
}

func newUsers(adminPassword string, apps []User, ttl time.Duration, now func() time.Time) *users {
	u := &users{
		adminSum: sha256.Sum256([]byte(adminPassword)),
		adminOK:  adminPassword != "",
		apps:     make(map[string]User, len(apps)),
		ttl:      ttl,
		now:      now,
		bcrypts:  make(chan struct{}, runtime.NumCPU()),
		sessions: make(map[string]*session),
	}
	for _, a := range apps {
		if a.Name != AdminUser {
			u.apps[a.Name] = a
		}
	}
	return u
}

// check returns the tenants of user when password is right (nil: all).
func (u *users) check(user, password string) (tenants []string, ok bool) {
	if user == AdminUser {
		sum := sha256.Sum256([]byte(password))
		return nil, u.adminOK && subtle.ConstantTimeCompare(sum[:], u.adminSum[:]) == 1
	}
	a, known := u.apps[user]
	hash := a.PasswordHash
	if !known {
		// The same work for an unknown user, so that timing does not
		// tell which names exist.
		hash = unknownUserHash()
	}
	u.bcrypts <- struct{}{}
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	<-u.bcrypts
	if err != nil || !known {
		return nil, false
	}
	if slices.Contains(a.Tenants, "*") {
		return nil, true
	}
	return slices.Clone(a.Tenants), true
}

// unknownUserHash is a bcrypt hash (cost 10) of a random password, made
// on first use: tens of milliseconds no process should pay at start.
var unknownUserHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(randomToken()), bcrypt.DefaultCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

// open starts a session; false when too many are open.
func (u *users) open(user string, tenants []string) (token string, s *session, ok bool) {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.sessions) >= maxSessions {
		for t, s := range u.sessions {
			if now.After(s.expires) {
				delete(u.sessions, t)
			}
		}
		if len(u.sessions) >= maxSessions {
			return "", nil, false
		}
	}
	token = randomToken()
	s = &session{user: user, tenants: tenants, csrf: randomToken(), expires: now.Add(u.ttl)}
	u.sessions[token] = s
	return token, s, true
}

// get returns the session of token and extends it.
func (u *users) get(token string) *session {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.sessions[token]
	if s == nil {
		return nil
	}
	if now.After(s.expires) {
		delete(u.sessions, token)
		return nil
	}
	s.expires = now.Add(u.ttl)
	return s
}

func (u *users) close(token string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.sessions, token)
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// authed runs h for requests with a valid session cookie or HTTP Basic
// credentials, and checks the CSRF token of requests that may change
// something (any method but GET and HEAD).
func (c *Console) authed(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.authenticate(w, r)
		if s == nil {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			got := r.Header.Get(CSRFHeader)
			switch {
			case s.basic && got != "":
			case !s.basic && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1:
			default:
				writeError(w, http.StatusForbidden, "missing or wrong "+CSRFHeader+" header (GET /console/api/me returns the session's token)")
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	})
}

// authenticate returns the request's session, or answers 401 (or 429 for
// an address that failed too often) and returns nil. No WWW-Authenticate
// header is sent: a browser must not offer its Basic prompt, which would
// then send the credentials with every request, cross-site ones too.
func (c *Console) authenticate(w http.ResponseWriter, r *http.Request) *session {
	if user, pw, ok := r.BasicAuth(); ok {
		ip := remoteIP(r)
		if !c.limiter.Allowed(ip) {
			writeError(w, http.StatusTooManyRequests, "too many failed logins; try again later")
			return nil
		}
		tenants, ok := c.users.check(user, pw)
		if !ok {
			c.limiter.Failed(ip)
			writeError(w, http.StatusUnauthorized, "wrong user name or password")
			return nil
		}
		return &session{user: user, tenants: tenants, basic: true}
	}
	if ck, err := r.Cookie(CookieName); err == nil {
		if s := c.users.get(ck.Value); s != nil {
			return s
		}
	}
	writeError(w, http.StatusUnauthorized, "login required: POST /console/api/login")
	return nil
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// loginRequest is the body of POST /console/api/login.
type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// meResponse describes the session: GET /console/api/me and the login's
// answer.
type meResponse struct {
	User string `json:"user"`
	// Tenants are the user's tenants; absent for every tenant.
	Tenants       []string `json:"tenants,omitempty"`
	AllTenants    bool     `json:"all_tenants"`
	CSRF          string   `json:"csrf,omitempty"`
	DefaultTenant string   `json:"default_tenant"`
}

func (c *Console) meOf(s *session) meResponse {
	return meResponse{User: s.user, Tenants: s.tenants, AllTenants: s.admin(), CSRF: s.csrf, DefaultTenant: c.opts.DefaultTenant}
}

// login checks a user name and password and sets the session cookie. The
// body must be JSON: a cross-site form cannot send that content type
// without a CORS preflight, so a foreign page cannot log a browser in
// under its own account (login CSRF).
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	var req loginRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: want {\"user\": ..., \"password\": ...}")
		return
	}
	ip := remoteIP(r)
	if !c.limiter.Allowed(ip) {
		writeError(w, http.StatusTooManyRequests, "too many failed logins; try again later")
		return
	}
	tenants, ok := c.users.check(req.User, req.Password)
	if !ok {
		c.limiter.Failed(ip)
		c.log.Info("console login refused", "user", req.User, "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	token, s, ok := c.users.open(req.User, tenants)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "too many console sessions")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: token, Path: "/console", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, c.meOf(s))
}

// logout ends the cookie's session. It needs no CSRF token: the worst a
// foreign page could do is log the user out, and SameSite=Strict keeps
// the cookie from cross-site requests anyway.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(CookieName); err == nil {
		c.users.close(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/console", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

func (c *Console) me(w http.ResponseWriter, _ *http.Request, s *session) {
	writeJSON(w, http.StatusOK, c.meOf(s))
}

// errorBody is every error's body, as the registry API's.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// errForbidden is the answer for a tenant the session may not see. It is
// a 404, like a tenant that does not exist, so that an application user
// cannot probe which tenants exist.
var errForbidden = errors.New("no such tenant")
