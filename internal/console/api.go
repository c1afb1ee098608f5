package console

import (
	"cmp"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/internal/clients"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// maxList bounds the entries of one list answer unless ?limit= says less.
const maxList = 1000

// maxShownPayload bounds the payload bytes shown per message.
const maxShownPayload = 4096

// ClientInfo is one connected client in the API.
type ClientInfo struct {
	Tenant     string `json:"tenant"`
	ClientID   string `json:"client_id"`
	Device     string `json:"device,omitempty"`
	User       string `json:"user,omitempty"`
	Protocol   string `json:"protocol"`
	Version    string `json:"version"`
	RemoteAddr string `json:"remote_addr"`
	TLS        bool   `json:"tls"`
	CleanStart bool   `json:"clean_start"`
	// ConnectedAt is when the connection attached to its session.
	ConnectedAt *time.Time `json:"connected_at,omitempty"`
	Durable     bool       `json:"durable"`
	// Inflight and Queued are the connection's: QoS 1/2 messages sent and
	// not acknowledged, PUBLISH packets waiting to be written.
	Inflight int `json:"inflight"`
	Queued   int `json:"queued"`
	// SessionQueued waits in the hub session for room in the connection.
	SessionQueued int    `json:"session_queued"`
	Dropped       uint64 `json:"dropped"`
	// NumSubscriptions is filled in lists, Subscriptions in details.
	NumSubscriptions int                `json:"num_subscriptions"`
	Subscriptions    []SubscriptionInfo `json:"subscriptions,omitempty"`
}

// SubscriptionInfo is one subscription in the API.
type SubscriptionInfo struct {
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local,omitempty"`
	RetainAsPublished bool   `json:"retain_as_published,omitempty"`
	RetainHandling    byte   `json:"retain_handling,omitempty"`
	ID                uint32 `json:"id,omitempty"`
}

// SessionInfo is one hub session in the API, connected or not.
type SessionInfo struct {
	Tenant        string             `json:"tenant"`
	ClientID      string             `json:"client_id"`
	Online        bool               `json:"online"`
	Durable       bool               `json:"durable"`
	Queued        int                `json:"queued"`
	Subscriptions []SubscriptionInfo `json:"subscriptions"`
}

// RetainedInfo is one retained message in the API.
type RetainedInfo struct {
	Topic string `json:"topic"`
	Message
}

// Message is a message's shown form: the payload as text when it is
// UTF-8, else base64, at most maxShownPayload bytes of it.
type Message struct {
	QoS         byte       `json:"qos"`
	Size        int        `json:"size"`
	Payload     string     `json:"payload,omitempty"`
	PayloadB64  string     `json:"payload_base64,omitempty"`
	Truncated   bool       `json:"truncated,omitempty"`
	ContentType string     `json:"content_type,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

func shown(m *hub.Message) Message {
	out := Message{QoS: m.QoS, Size: len(m.Payload), ContentType: m.ContentType}
	p := m.Payload
	if len(p) > maxShownPayload {
		p, out.Truncated = p[:maxShownPayload], true
	}
	text := p
	// A cut may split the last character: back off to its start.
	for i := 0; out.Truncated && i < utf8.UTFMax-1 && len(text) > 0 && !utf8.Valid(text); i++ {
		text = text[:len(text)-1]
	}
	if utf8.Valid(text) {
		out.Payload = string(text)
	} else {
		out.PayloadB64 = base64.StdEncoding.EncodeToString(p)
	}
	if !m.Expiry.IsZero() {
		e := m.Expiry
		out.ExpiresAt = &e
	}
	return out
}

func subscriptionsOf(subs []hub.Subscription) []SubscriptionInfo {
	out := make([]SubscriptionInfo, 0, len(subs))
	for _, s := range subs {
		out = append(out, SubscriptionInfo{Filter: s.Filter, QoS: s.QoS, NoLocal: s.NoLocal,
			RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, ID: s.ID})
	}
	return out
}

// scope returns the tenants a list covers: the one of ?tenant= (which the
// session must be allowed), or every tenant the session sees ("" meaning
// all). It answers the request itself when it returns false.
func scope(w http.ResponseWriter, r *http.Request, s *session) ([]string, bool) {
	if t := r.URL.Query().Get("tenant"); t != "" {
		if !s.allows(t) {
			writeError(w, http.StatusNotFound, errForbidden.Error()+": "+t)
			return nil, false
		}
		return []string{t}, true
	}
	if s.admin() {
		return []string{""}, true
	}
	return s.tenants, true
}

// oneTenant returns the tenant of ?tenant=, or the default one (the
// user's first tenant for an application user).
func (c *Console) oneTenant(w http.ResponseWriter, r *http.Request, s *session) (string, bool) {
	t := r.URL.Query().Get("tenant")
	if t == "" {
		t = c.opts.DefaultTenant
		if !s.admin() && len(s.tenants) > 0 && !s.allows(t) {
			t = s.tenants[0]
		}
	}
	if !s.allows(t) {
		writeError(w, http.StatusNotFound, errForbidden.Error()+": "+t)
		return "", false
	}
	return t, true
}

func limitOf(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || n <= 0 || n > maxList {
		return maxList
	}
	return n
}

// matches reports whether q (lower case) is in one of the fields.
func matches(q string, fields ...string) bool {
	if q == "" {
		return true
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

// clientInfos returns the connected clients of the tenants, merged with
// their hub sessions.
func (c *Console) clientInfos(tenants []string, q string) []ClientInfo {
	out := []ClientInfo{}
	if c.opts.Clients == nil {
		return out
	}
	for _, t := range tenants {
		sessions := map[string]hub.SessionInfo{}
		for _, s := range c.opts.Hub.Sessions(t, hono.HubPrefix) {
			sessions[s.Tenant+"\x00"+s.ClientID] = s
		}
		for _, cl := range c.opts.Clients.Clients(t) {
			if !matches(q, cl.ClientID, cl.Device, cl.User, cl.RemoteAddr, cl.Tenant) {
				continue
			}
			out = append(out, clientInfo(cl, sessions[cl.Tenant+"\x00"+cl.ClientID]))
		}
	}
	return out
}

func clientInfo(cl clients.Client, s hub.SessionInfo) ClientInfo {
	ci := ClientInfo{
		Tenant: cl.Tenant, ClientID: cl.ClientID, Device: cl.Device, User: cl.User, Protocol: cl.Protocol,
		Version: cl.Version, RemoteAddr: cl.RemoteAddr, TLS: cl.TLS, CleanStart: cl.CleanStart,
		Durable: s.Durable, Inflight: cl.Inflight, Queued: cl.Queued, SessionQueued: s.Queued,
		Dropped: cl.Dropped, NumSubscriptions: len(s.Subscriptions),
	}
	if at := cmp.Or(cl.ConnectedAt, s.Attached); !at.IsZero() {
		ci.ConnectedAt = &at
	}
	return ci
}

// listClients: GET /console/api/clients?tenant=&q=&limit=.
func (c *Console) listClients(w http.ResponseWriter, r *http.Request, s *session) {
	tenants, ok := scope(w, r, s)
	if !ok {
		return
	}
	all := c.clientInfos(tenants, strings.ToLower(r.URL.Query().Get("q")))
	total := len(all)
	if n := limitOf(r); len(all) > n {
		all = all[:n]
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "clients": all})
}

// getClient: GET /console/api/clients/{tenant}/{client}.
func (c *Console) getClient(w http.ResponseWriter, r *http.Request, s *session) {
	tenant, id := r.PathValue("tenant"), r.PathValue("client")
	if !s.allows(tenant) {
		writeError(w, http.StatusNotFound, errForbidden.Error()+": "+tenant)
		return
	}
	if c.opts.Clients != nil {
		for _, cl := range c.opts.Clients.Clients(tenant) {
			if cl.ClientID != id {
				continue
			}
			sess, _ := c.opts.Hub.Session(tenant, id)
			ci := clientInfo(cl, sess)
			ci.Subscriptions = subscriptionsOf(sess.Subscriptions)
			writeJSON(w, http.StatusOK, ci)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no connected client "+id+" in tenant "+tenant)
}

// kickClient: POST /console/api/clients/{tenant}/{client}/kick.
func (c *Console) kickClient(w http.ResponseWriter, r *http.Request, s *session) {
	tenant, id := r.PathValue("tenant"), r.PathValue("client")
	if !s.allows(tenant) {
		writeError(w, http.StatusNotFound, errForbidden.Error()+": "+tenant)
		return
	}
	if c.opts.Clients == nil || !c.opts.Clients.Kick(tenant, id) {
		writeError(w, http.StatusNotFound, "no connected client "+id+" in tenant "+tenant)
		return
	}
	c.log.Info("console: client kicked", "user", s.user, "tenant", tenant, "client", id)
	w.WriteHeader(http.StatusNoContent)
}

// listSessions: GET /console/api/sessions?tenant=&q=&limit=, connected or
// not, whose client ID or a subscription's filter contains q; the hub's
// internal sessions are left out.
func (c *Console) listSessions(w http.ResponseWriter, r *http.Request, s *session) {
	tenants, ok := scope(w, r, s)
	if !ok {
		return
	}
	q := strings.ToLower(r.URL.Query().Get("q"))
	all := []SessionInfo{}
	for _, t := range tenants {
		for _, hs := range c.opts.Hub.Sessions(t, hono.HubPrefix) {
			fields := []string{hs.ClientID}
			for _, sub := range hs.Subscriptions {
				fields = append(fields, sub.Filter)
			}
			if !matches(q, fields...) {
				continue
			}
			all = append(all, SessionInfo{Tenant: hs.Tenant, ClientID: hs.ClientID, Online: hs.Online,
				Durable: hs.Durable, Queued: hs.Queued, Subscriptions: subscriptionsOf(hs.Subscriptions)})
		}
	}
	total := len(all)
	if n := limitOf(r); len(all) > n {
		all = all[:n]
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "sessions": all})
}

// listRetained: GET /console/api/retained?tenant=&filter=&limit=.
func (c *Console) listRetained(w http.ResponseWriter, r *http.Request, s *session) {
	tenant, ok := c.oneTenant(w, r, s)
	if !ok {
		return
	}
	filter := r.URL.Query().Get("filter")
	if filter == "" {
		filter = "#"
	}
	if err := topic.ValidateFilter(filter); err != nil {
		writeError(w, http.StatusBadRequest, "invalid filter: "+err.Error())
		return
	}
	limit := limitOf(r)
	msgs := c.opts.Hub.Retained(tenant, filter, limit+1)
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	out := make([]RetainedInfo, 0, len(msgs))
	for _, m := range msgs {
		if hono.Reserved(m.Topic) {
			continue
		}
		out = append(out, RetainedInfo{Topic: m.Topic, Message: shown(m)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": tenant, "retained": out, "more": more})
}

// deleteRetained: DELETE /console/api/retained?tenant=&topic=. It
// publishes an empty retained message, as a client clearing the topic
// would: the store, the other nodes of a cluster and the subscribers (who
// get the empty message, [MQTT-3.3.1-10]) all hear of it.
func (c *Console) deleteRetained(w http.ResponseWriter, r *http.Request, s *session) {
	tenant, ok := c.oneTenant(w, r, s)
	if !ok {
		return
	}
	name := r.URL.Query().Get("topic")
	if err := topic.ValidateName(name); err != nil || hono.Reserved(name) {
		writeError(w, http.StatusBadRequest, "invalid topic: give ?topic=<a topic name without wildcards>")
		return
	}
	if len(c.opts.Hub.Retained(tenant, name, 1)) == 0 {
		writeError(w, http.StatusNotFound, "no retained message on "+name+" in tenant "+tenant)
		return
	}
	if res := c.opts.Hub.Publish(tenant, &hub.Message{Topic: name, Retain: true}); res.Err != nil {
		c.log.Error("console: deleting a retained message", "tenant", tenant, "topic", name, "err", res.Err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	c.log.Info("console: retained message deleted", "user", s.user, "tenant", tenant, "topic", name)
	w.WriteHeader(http.StatusNoContent)
}
