// Package bridge connects the hub to a remote MQTT broker, as Mosquitto's
// bridges do: messages on the local topics of "out" rules are published to
// the remote broker, messages on the remote topics of "in" rules are
// published locally, each with its topic's prefix swapped.
//
// The out side is a durable hub session ($bridge/<name>) whose QoS 1/2
// deliveries are acknowledged to the hub only once the remote broker
// acknowledged them, so they stay in Ferry's store while the remote is
// away and across Ferry's restarts. The in side acknowledges a remote
// message only once the hub took it (committed, for durable subscribers).
// Loops between brokers bridged both ways are cut with no-local: the local
// session does not get what the bridge published locally, and an MQTT 5
// remote does not send back what the bridge published there.
package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/mqtt/client"
	"github.com/ferry-iot/ferry/mqtt/packet"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// outBuffer bounds the deliveries taken from the hub session and not yet
// handed to the client. Past it the sink refuses and the hub keeps QoS 1/2
// deliveries in the session's queue (and store): that queue, with its
// limits and metrics, is the real buffer.
const outBuffer = 256

// Options configure a Bridge.
type Options struct {
	Config config.Bridge
	Hub    *hub.Hub
	// Dir keeps the client's inbound QoS 2 state across restarts; empty
	// keeps it in memory.
	Dir    string
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the waits between connection
	// attempts; 0 means 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
}

// Bridge is one running bridge.
type Bridge struct {
	cfg     config.Bridge
	hub     *hub.Hub
	log     *slog.Logger
	opts    client.Options
	localID string
	in, out []rule

	// session is the local side of the out rules; nil without any.
	session *hub.Session
	queue   chan hub.Delivery
	// refused is set when the sink turned a delivery away: the forwarder
	// then asks the session to drain once it took one.
	refused atomic.Bool
	acks    chan pendingAck

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	client *client.Client // set once the first connection succeeded
	ready  chan struct{}  // closed then
	// leftover are deliveries taken from the session and not forwarded
	// when the bridge stopped; they go back to it on Detach.
	leftover []hub.Delivery

	connected    atomic.Bool
	connects     atomic.Uint64
	forwardedIn  atomic.Uint64
	forwardedOut atomic.Uint64
	dropped      atomic.Uint64
	subscribed   atomic.Bool
}

// rule is one direction of a topic rule: filter on the side messages come
// from, whose prefix from is replaced by to.
type rule struct {
	filter   string
	from, to string
	qos      byte
}

type pendingAck struct {
	tok *client.Token
	d   hub.Delivery
}

// Stats are a bridge's counters, for metrics.
type Stats struct {
	Name      string
	Connected bool
	// Reconnects counts the connections after the first one.
	Reconnects   uint64
	ForwardedIn  uint64
	ForwardedOut uint64
	// Dropped counts messages the remote or the hub refused, or that
	// expired before they could be forwarded.
	Dropped uint64
	// Queued is what waits to go out: the local session's queue in
	// memory and the bridge's own buffer.
	Queued int
}

// Start opens the bridge's local session and connects to the remote broker
// in the background: Ferry starts while the remote is unreachable, and the
// out side's messages wait in the session.
func Start(opts Options) (*Bridge, error) {
	cfg := opts.Config.WithDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{
		cfg:     cfg,
		hub:     opts.Hub,
		log:     log.With(slog.String("bridge", cfg.Name)),
		localID: "$bridge/" + cfg.Name,
		queue:   make(chan hub.Delivery, outBuffer),
		acks:    make(chan pendingAck, 1024),
		ready:   make(chan struct{}),
	}
	for _, t := range cfg.Topics {
		if t.Direction == "in" || t.Direction == "both" {
			b.in = append(b.in, rule{filter: t.RemotePrefix + t.Pattern, from: t.RemotePrefix, to: t.LocalPrefix, qos: t.QoS})
		}
		if t.Direction == "out" || t.Direction == "both" {
			b.out = append(b.out, rule{filter: t.LocalPrefix + t.Pattern, from: t.LocalPrefix, to: t.RemotePrefix, qos: t.QoS})
		}
	}
	copts, err := b.clientOptions(opts)
	if err != nil {
		return nil, err
	}
	b.opts = copts
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if len(b.out) > 0 {
		if err := b.openSession(); err != nil {
			b.cancel()
			return nil, err
		}
		b.wg.Add(2)
		go b.forward()
		go b.acknowledge()
	}
	b.wg.Add(1)
	go b.connect(opts.MinBackoff, opts.MaxBackoff)
	return b, nil
}

func (b *Bridge) clientOptions(opts Options) (client.Options, error) {
	cfg := b.cfg
	o := client.Options{
		Server:     cfg.Address,
		ClientID:   cfg.ClientID,
		CleanStart: cfg.CleanStart,
		KeepAlive:  time.Duration(cfg.KeepAlive),
		Username:   cfg.Username,
		Reconnect:  true,
		// Mosquitto 2.0 loses messages sent with a topic alias on a
		// connection resumed after its restart (TestBridgeMosquittoOutage).
		NoTopicAliases:   true,
		MinBackoff:       opts.MinBackoff,
		MaxBackoff:       opts.MaxBackoff,
		OnMessage:        b.onMessage,
		OnConnect:        b.onConnect,
		OnConnectionLost: b.onConnectionLost,
	}
	if cfg.Password != "" {
		o.Password = []byte(cfg.Password)
	}
	o.Version = packet.V5
	if cfg.Protocol == config.BridgeMQTTv311 {
		o.Version = packet.V311
	}
	if o.Version == packet.V5 && !cfg.CleanStart {
		// The remote keeps the session (subscriptions, queued messages)
		// while Ferry is away, for as long as MQTT 5 allows.
		o.SessionExpiry = math.MaxUint32 * time.Second
	}
	u, err := url.Parse(cfg.Address)
	if err != nil {
		return o, fmt.Errorf("bridges %s: address: %w", cfg.Name, err)
	}
	if u.Scheme == "tls" {
		tc := &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: cfg.TLS.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
		if cfg.TLS.CAFile != "" {
			pem, err := os.ReadFile(cfg.TLS.CAFile)
			if err != nil {
				return o, fmt.Errorf("bridges %s: tls.ca_file: %w", cfg.Name, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("bridges %s: tls.ca_file %s holds no PEM certificate", cfg.Name, cfg.TLS.CAFile)
			}
		}
		if cfg.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
			if err != nil {
				return o, fmt.Errorf("bridges %s: tls.cert_file, tls.key_file: %w", cfg.Name, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		o.TLSConfig = tc
	}
	o.Store = client.NewMemoryStore()
	if opts.Dir != "" {
		fs, err := client.OpenFileStore(opts.Dir)
		if err != nil {
			return o, fmt.Errorf("bridges %s: %w", cfg.Name, err)
		}
		o.Store = &store{MemoryStore: client.NewMemoryStore(), disk: fs}
	}
	return o, nil
}

// openSession opens the durable local session of the out rules and makes
// its subscriptions those of the configuration, which may have changed
// since the session was stored.
func (b *Bridge) openSession() error {
	s, _ := b.hub.Open(b.cfg.Tenant, b.localID, false)
	if err := s.MakeDurable(hub.Forever); err != nil {
		return fmt.Errorf("bridges %s: %w", b.cfg.Name, err)
	}
	b.session = s
	want := map[string]hub.Subscription{}
	for _, r := range b.out {
		sub := hub.Subscription{Filter: r.filter, QoS: r.qos, NoLocal: true, RetainAsPublished: true, RetainHandling: 1}
		if old, ok := want[r.filter]; ok {
			sub.QoS = max(sub.QoS, old.QoS)
		}
		want[r.filter] = sub
	}
	for _, old := range s.Subscriptions() {
		if _, ok := want[old.Filter]; !ok {
			s.Unsubscribe(old.Filter)
		}
	}
	s.Attach(sink{b})
	for _, sub := range want {
		retained, err := s.Subscribe(sub)
		if err != nil {
			return fmt.Errorf("bridges %s: subscribing to %s locally: %w", b.cfg.Name, sub.Filter, err)
		}
		s.DeliverRetained(retained)
	}
	return nil
}

// sink takes the session's deliveries without blocking: the hub holds its
// session's lock while it calls Deliver.
type sink struct{ b *Bridge }

func (s sink) Deliver(d hub.Delivery) bool {
	select {
	case s.b.queue <- d:
		return true
	default:
		s.b.refused.Store(true)
		return false
	}
}

// connect makes the first connection, retrying: the client retries only
// connections after the first.
func (b *Bridge) connect(minBackoff, maxBackoff time.Duration) {
	defer b.wg.Done()
	if minBackoff <= 0 {
		minBackoff = 100 * time.Millisecond
	}
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	wait := minBackoff
	for attempt := 0; ; attempt++ {
		c, err := client.Connect(b.ctx, b.opts)
		if err == nil {
			b.mu.Lock()
			if b.ctx.Err() != nil {
				b.mu.Unlock()
				c.Close()
				return
			}
			b.client = c
			b.mu.Unlock()
			close(b.ready)
			b.log.Info("bridge connected", slog.String("address", b.cfg.Address))
			return
		}
		if b.ctx.Err() != nil {
			return
		}
		level := slog.LevelDebug
		if attempt == 0 || attempt%10 == 9 {
			level = slog.LevelWarn
		}
		b.log.Log(b.ctx, level, "bridge cannot connect; retrying", slog.String("address", b.cfg.Address), slog.Any("err", err))
		t := time.NewTimer(wait/2 + time.Duration(float64(wait/2)*rand.Float64()))
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, maxBackoff)
	}
}

func (b *Bridge) currentClient() *client.Client {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.client
}

func (b *Bridge) onConnect(c *client.Client, sessionPresent bool) {
	b.connected.Store(true)
	if b.connects.Add(1) > 1 {
		b.log.Info("bridge reconnected", slog.Bool("session_present", sessionPresent))
	}
	// Subscribed once per process in any case: the rules may have changed
	// since the remote session was made.
	if len(b.in) == 0 || (sessionPresent && b.subscribed.Load()) {
		return
	}
	sub := &packet.Subscribe{}
	for _, r := range b.in {
		sub.Subscriptions = append(sub.Subscriptions, packet.Subscription{
			Filter: r.filter, QoS: r.qos, NoLocal: true, RetainAsPublished: true, RetainHandling: 1,
		})
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	ack, err := c.Subscribe(ctx, sub)
	if err != nil {
		b.log.Warn("bridge subscription failed", slog.Any("err", err))
		return
	}
	for i, code := range ack.ReasonCodes {
		if code >= 0x80 && i < len(sub.Subscriptions) {
			b.log.Warn("the remote refused a bridge subscription", slog.String("filter", sub.Subscriptions[i].Filter), slog.Int("reason", int(code)))
		}
	}
	b.subscribed.Store(true)
}

func (b *Bridge) onConnectionLost(_ *client.Client, err error) {
	b.connected.Store(false)
	b.log.Warn("bridge connection lost; reconnecting", slog.Any("err", err))
}

// onMessage publishes a remote message locally and returns once the hub
// took it, so that the client's acknowledgement means "taken".
func (b *Bridge) onMessage(m *client.Message) {
	r, ok := match(b.in, m.Topic)
	if !ok {
		b.dropped.Add(1)
		return
	}
	hm := &hub.Message{
		Topic:   r.to + strings.TrimPrefix(m.Topic, r.from),
		Payload: append([]byte(nil), m.Payload...),
		QoS:     min(m.QoS, r.qos),
		Retain:  m.Retain,
		// The out side's no-local subscription skips it: no echo to the
		// remote.
		Origin:          b.localID,
		ContentType:     m.Properties.ContentType,
		ResponseTopic:   m.Properties.ResponseTopic,
		CorrelationData: append([]byte(nil), m.Properties.CorrelationData...),
		Created:         time.Now(),
	}
	if len(hm.CorrelationData) == 0 {
		hm.CorrelationData = nil
	}
	if pf := m.Properties.PayloadFormat; pf != nil {
		v := *pf
		hm.PayloadFormat = &v
	}
	if e := m.Properties.MessageExpiry; e != nil {
		hm.Expiry = time.Now().Add(time.Duration(*e) * time.Second)
	}
	for _, u := range m.Properties.User {
		hm.UserProperties = append(hm.UserProperties, hub.UserProperty{Key: u.Key, Value: u.Value})
	}
	if err := topic.ValidateName(hm.Topic); err != nil {
		b.dropped.Add(1)
		b.log.Warn("bridge: inbound message has no valid local topic", slog.String("topic", hm.Topic), slog.Any("err", err))
		return
	}
	res := b.hub.Publish(b.cfg.Tenant, hm)
	if res.Err != nil {
		// The client has no way to refuse the message: it is
		// acknowledged all the same, as a local publisher's would be.
		b.log.Warn("bridge: publishing locally", slog.String("topic", hm.Topic), slog.Any("err", res.Err))
	}
	b.forwardedIn.Add(1)
}

// forward hands the session's deliveries to the client in order.
func (b *Bridge) forward() {
	defer b.wg.Done()
	// Until the first connection, deliveries wait here and in the session.
	select {
	case <-b.ctx.Done():
		return
	case <-b.ready:
	}
	c := b.currentClient()
	for {
		select {
		case <-b.ctx.Done():
			return
		case d := <-b.queue:
			if b.refused.Swap(false) {
				// Room again in the queue: let the session's backlog in.
				b.session.Drain()
			}
			if !b.send(c, d) {
				return
			}
		}
	}
}

// send publishes d and reports false when the bridge stops.
func (b *Bridge) send(c *client.Client, d hub.Delivery) bool {
	m, ok := b.remoteMessage(d)
	if !ok {
		b.dropped.Add(1)
		b.session.Acked(d.Seq)
		return true
	}
	tok, err := c.PublishAsync(b.ctx, m)
	switch {
	case b.ctx.Err() != nil:
		b.keep(d)
		return false
	case errors.Is(err, client.ErrNotConnected):
		// QoS 0 between connections: lost, as for any offline subscriber.
		b.dropped.Add(1)
		return true
	case err != nil:
		b.dropped.Add(1)
		b.log.Warn("bridge: the client refused a message", slog.String("topic", m.Topic), slog.Any("err", err))
		b.session.Acked(d.Seq)
		return true
	case m.QoS == 0:
		b.forwardedOut.Add(1)
		return true
	}
	select {
	case b.acks <- pendingAck{tok: tok, d: d}:
		return true
	case <-b.ctx.Done():
		b.keep(d)
		return false
	}
}

// acknowledge acknowledges the hub's deliveries as the remote acknowledges
// them, so what the remote has not taken stays in the session's store.
func (b *Bridge) acknowledge() {
	defer b.wg.Done()
	for {
		var p pendingAck
		select {
		case <-b.ctx.Done():
			return
		case p = <-b.acks:
		}
		select {
		case <-b.ctx.Done():
			b.keep(p.d)
			return
		case <-p.tok.Done():
		}
		switch err := p.tok.Err(); {
		case err == nil:
			b.forwardedOut.Add(1)
		case errors.Is(err, client.ErrClosed):
			b.keep(p.d)
			return
		default:
			// The remote refused it (e.g. not authorized): sending it
			// again would be refused again.
			b.dropped.Add(1)
			b.log.Warn("bridge: the remote refused a message", slog.String("topic", p.d.Message.Topic), slog.Any("err", err))
		}
		b.session.Acked(p.d.Seq)
	}
}

func (b *Bridge) keep(d hub.Delivery) {
	b.mu.Lock()
	b.leftover = append(b.leftover, d)
	b.mu.Unlock()
}

// remoteMessage maps d to the remote topic; false when it is not to be
// sent (expired, or no rule, after a configuration change).
func (b *Bridge) remoteMessage(d hub.Delivery) (*client.Message, bool) {
	hm := d.Message
	r, ok := match(b.out, hm.Topic)
	if !ok {
		return nil, false
	}
	m := &client.Message{
		Topic:   r.to + strings.TrimPrefix(hm.Topic, r.from),
		Payload: hm.Payload,
		QoS:     min(d.QoS, r.qos),
		Retain:  d.Retain,
	}
	if !hm.Expiry.IsZero() {
		left := time.Until(hm.Expiry)
		if left <= 0 {
			return nil, false
		}
		secs := uint32((left + time.Second - 1) / time.Second)
		m.Properties.MessageExpiry = &secs
	}
	m.Properties.ContentType = hm.ContentType
	m.Properties.ResponseTopic = hm.ResponseTopic
	m.Properties.CorrelationData = hm.CorrelationData
	m.Properties.PayloadFormat = hm.PayloadFormat
	for _, u := range hm.UserProperties {
		m.Properties.User = append(m.Properties.User, packet.UserProperty{Key: u.Key, Value: u.Value})
	}
	return m, true
}

// match returns the first rule whose filter matches name.
func match(rules []rule, name string) (rule, bool) {
	for _, r := range rules {
		if topic.Matches(r.filter, name) {
			return r, true
		}
	}
	return rule{}, false
}

// Name returns the bridge's name.
func (b *Bridge) Name() string { return b.cfg.Name }

// Tenant is the local tenant the bridge works in.
func (b *Bridge) Tenant() string { return b.cfg.Tenant }

// Stats returns the bridge's counters.
func (b *Bridge) Stats() Stats {
	st := Stats{
		Name:         b.cfg.Name,
		Connected:    b.connected.Load(),
		ForwardedIn:  b.forwardedIn.Load(),
		ForwardedOut: b.forwardedOut.Load(),
		Dropped:      b.dropped.Load(),
	}
	if n := b.connects.Load(); n > 1 {
		st.Reconnects = n - 1
	}
	if b.session != nil {
		st.Queued = b.session.Queued() + len(b.queue)
	}
	return st
}

// Close disconnects from the remote broker and detaches the local session,
// which keeps in the store what was not forwarded. It must be called
// before the hub is closed.
func (b *Bridge) Close(ctx context.Context) error {
	b.cancel()
	b.mu.Lock()
	c := b.client
	b.mu.Unlock()
	if c != nil {
		c.Close()
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("bridges %s: stopping: %w", b.cfg.Name, ctx.Err())
	}
	if b.session == nil {
		return nil
	}
	// Oldest first: those the remote had, then those still buffered.
	unacked := b.leftover
	for len(b.acks) > 0 {
		unacked = append(unacked, (<-b.acks).d)
	}
	for len(b.queue) > 0 {
		unacked = append(unacked, <-b.queue)
	}
	b.session.Detach(hub.Departure{Unacked: unacked, Expiry: hub.Forever})
	return nil
}
