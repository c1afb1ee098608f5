// Package cmdroute routes commands between the nodes of a cluster through
// Kafka, without Hono's per-instance topics (whose creation and deletion
// hurt its users, hono#2773 and hono#2920): two topics serve every node.
//
// The routes topic (compacted) is a directory: each node records which
// devices and gateways hold a command subscription on it, and a heartbeat.
// Every node reads it from the start and keeps reading, so each knows
// where every device can be reached. The relay topic carries commands to
// the node that holds the subscription, their outcomes back to the node
// that sent them, and device responses back to the node whose application
// (or Kafka command) asked; every node reads what is addressed to it.
//
// # Caveats
//
// The directory is eventually consistent: a subscription made a moment ago
// on another node may not be seen yet, and the command is then released. A
// node that stops without saying so keeps its entries until its heartbeat
// is older than DeadAfter. Gateways on other nodes are found through the
// device's via only (not viaGroups).
package cmdroute

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/kafkatopics"
)

// Default topic names.
const (
	DefaultRoutesTopic = "ferry.command_routes"
	DefaultRelayTopic  = "ferry.command_relay"
)

// Options configures a Relay.
type Options struct {
	// Client holds the connection options (brokers, TLS, SASL). Required.
	Client []kgo.Opt
	// NodeID names this node; unique among running nodes. Required.
	NodeID string
	// Router is the node's command router. Required.
	Router *command.Router
	// RoutesTopic and RelayTopic; default DefaultRoutesTopic and
	// DefaultRelayTopic. Start creates them when missing.
	RoutesTopic, RelayTopic string
	// OutcomeTimeout bounds the wait for the outcome of a forwarded
	// command; then it counts as released. Default 15s.
	OutcomeTimeout time.Duration
	// Heartbeat is how often the node says it is alive; DeadAfter how old
	// a node's last heartbeat may be before its entries are ignored.
	// Defaults 5s and 20s.
	Heartbeat, DeadAfter time.Duration
	Logger               *slog.Logger
}

// Relay is a node's part of the cluster's command routing: the Router's
// command.Remote.
type Relay struct {
	opts Options
	log  *slog.Logger
	cl   *kgo.Client // produces, and reads the routes topic from its start
	// relay reads the relay topic from its end: old commands are no
	// one's concern now.
	relay *kgo.Client

	mu sync.Mutex
	// subs counts this node's subscriptions per entry; the entry is
	// recorded on the first and removed after the last.
	subs map[entry]int
	// dir is the directory read from the routes topic: entry (without
	// node) -> node -> when subscribed.
	dir   map[entry]map[string]time.Time
	alive map[string]time.Time // node -> last heartbeat
	// waiting are this node's forwarded commands, by id, until their
	// outcome.
	waiting map[string]*forwarded
	// origins are the nodes the commands delivered here came from, for
	// their responses.
	origins map[responseKey]origin

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// entry is a subscription of the directory: a device's own (or a
// gateway's for that device), or a gateway's for all its devices.
type entry struct {
	tenant, id string
	all        bool
}

type forwarded struct {
	done  func(command.Outcome)
	timer *time.Timer
}

type responseKey struct {
	messaging                      int
	tenant, replyID, correlationID string
}

type origin struct {
	node string
	at   time.Time
}

// maxOrigins bounds the responses awaited for other nodes; older ones
// are dropped first.
const maxOrigins = 100_000

// Start creates the topics if need be, starts reading them, and makes r
// the Router's Remote. ctx bounds the start.
func Start(ctx context.Context, opts Options) (*Relay, error) {
	if opts.NodeID == "" || opts.Router == nil {
		return nil, errors.New("cmdroute: NodeID and Router are required")
	}
	if opts.RoutesTopic == "" {
		opts.RoutesTopic = DefaultRoutesTopic
	}
	if opts.RelayTopic == "" {
		opts.RelayTopic = DefaultRelayTopic
	}
	if opts.OutcomeTimeout <= 0 {
		opts.OutcomeTimeout = 15 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 5 * time.Second
	}
	if opts.DeadAfter <= 0 {
		opts.DeadAfter = 4 * opts.Heartbeat
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Relay{opts: opts, log: opts.Logger.With("node", opts.NodeID), subs: map[entry]int{},
		dir: map[entry]map[string]time.Time{}, alive: map[string]time.Time{}, waiting: map[string]*forwarded{},
		origins: map[responseKey]origin{}}
	var err error
	r.cl, err = kgo.NewClient(append(opts.Client,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(opts.OutcomeTimeout),
		kgo.ConsumeTopics(opts.RoutesTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("cmdroute: %w", err)
	}
	if err := r.createTopics(ctx); err != nil {
		r.cl.Close()
		return nil, err
	}
	r.relay, err = kgo.NewClient(append(opts.Client,
		kgo.ConsumeTopics(opts.RelayTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
	)...)
	if err != nil {
		r.cl.Close()
		return nil, fmt.Errorf("cmdroute: %w", err)
	}
	var rctx context.Context
	rctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(3)
	go r.consume(rctx, r.cl, r.route)
	go r.consume(rctx, r.relay, func(rec *kgo.Record) { r.relayed(rctx, rec) })
	go r.beat(rctx)
	opts.Router.SetRemote(r)
	return r, nil
}

func (r *Relay) createTopics(ctx context.Context) error {
	res, err := kafkatopics.Create(ctx, r.cl, []string{r.opts.RoutesTopic}, kafkatopics.Spec{Configs: map[string]string{"cleanup.policy": "compact"}})
	if err == nil {
		err = kafkatopics.Err(res)
	}
	if err != nil {
		return fmt.Errorf("cmdroute: topic %s: %w", r.opts.RoutesTopic, err)
	}
	res, err = kafkatopics.Create(ctx, r.cl, []string{r.opts.RelayTopic}, kafkatopics.Spec{Configs: map[string]string{"retention.ms": "3600000"}})
	if err == nil {
		err = kafkatopics.Err(res)
	}
	if err != nil {
		return fmt.Errorf("cmdroute: topic %s: %w", r.opts.RelayTopic, err)
	}
	return nil
}

// Close records that this node holds no subscription any more, and stops.
// A second Close does nothing.
func (r *Relay) Close() { r.closeOnce.Do(r.close) }

func (r *Relay) close() {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	var recs []*kgo.Record
	for e := range r.subs {
		recs = append(recs, r.routeRecord(e, nil))
	}
	recs = append(recs, &kgo.Record{Topic: r.opts.RoutesTopic, Key: []byte(r.opts.NodeID + "\x00h")})
	r.subs = map[entry]int{}
	for id, f := range r.waiting {
		f.timer.Stop()
		delete(r.waiting, id)
		go f.done(command.Released)
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		r.log.Warn("cmdroute: routes not withdrawn at close", "err", err)
	}
	r.relay.Close()
	r.cl.Close()
}

// Routes records: key <node>\x00h for the heartbeat, <node>\x00d or
// <node>\x00g (a gateway for all its devices) \x00<tenant>\x00<id> for a
// subscription; value {"at": unix ms}, or none to withdraw it.
type routeValue struct {
	At int64 `json:"at"`
}

func (r *Relay) routeRecord(e entry, at *time.Time) *kgo.Record {
	kind := "d"
	if e.all {
		kind = "g"
	}
	rec := &kgo.Record{Topic: r.opts.RoutesTopic, Key: []byte(r.opts.NodeID + "\x00" + kind + "\x00" + e.tenant + "\x00" + e.id)}
	if at != nil {
		rec.Value, _ = json.Marshal(routeValue{At: at.UnixMilli()})
	}
	return rec
}

func (r *Relay) produce(rec *kgo.Record, what string) {
	r.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			r.log.Warn("cmdroute: record lost", "what", what, "err", err)
		}
	})
}

// Subscribed implements command.Remote.
func (r *Relay) Subscribed(tenant, id string, all, up bool) {
	e := entry{tenant, id, all}
	r.mu.Lock()
	n := r.subs[e]
	if up {
		r.subs[e] = n + 1
	} else if n <= 1 {
		delete(r.subs, e)
	} else {
		r.subs[e] = n - 1
	}
	first, last := up && n == 0, !up && n == 1
	r.mu.Unlock()
	switch {
	case first:
		now := time.Now()
		r.produce(r.routeRecord(e, &now), "route")
	case last:
		r.produce(r.routeRecord(e, nil), "route withdrawal")
	}
}

// Device implements command.Remote.
func (r *Relay) Device(tenant, device string) (command.Consumer, time.Time, bool) {
	node, at, ok := r.lookup(entry{tenant, device, false})
	if !ok {
		return nil, time.Time{}, false
	}
	return remote{r, node}, at, true
}

// Gateway implements command.Remote.
func (r *Relay) Gateway(tenant string, gateways []string) (command.Consumer, string, bool) {
	for _, gw := range gateways {
		if node, _, ok := r.lookup(entry{tenant, gw, true}); ok {
			return remote{r, node}, gw, true
		}
	}
	return nil, "", false
}

// lookup is the live node other than this one with the most recent
// subscription for e.
func (r *Relay) lookup(e entry) (string, time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var best string
	var bestAt time.Time
	dead := time.Now().Add(-r.opts.DeadAfter)
	for node, at := range r.dir[e] {
		if node == r.opts.NodeID || !r.alive[node].After(dead) {
			continue
		}
		if best == "" || at.After(bestAt) {
			best, bestAt = node, at
		}
	}
	return best, bestAt, best != ""
}

// Respond implements command.Remote: a response to a command that came
// from another node goes back there.
func (r *Relay) Respond(resp *command.Response) bool {
	k := responseKey{resp.Messaging, resp.Tenant, resp.ReplyID, resp.CorrelationID}
	r.mu.Lock()
	o, ok := r.origins[k]
	delete(r.origins, k)
	r.mu.Unlock()
	if !ok {
		return false
	}
	v, _ := json.Marshal(resp)
	r.produce(r.relayRecord(o.node, kindResponse, "", v), "response")
	return true
}

// Relay records: headers to (node), from (node), kind, id (command and
// outcome); value the JSON of the command, outcome or response.
const (
	kindCommand  = "command"
	kindOutcome  = "outcome"
	kindResponse = "response"
)

func (r *Relay) relayRecord(to, kind, id string, value []byte) *kgo.Record {
	return &kgo.Record{Topic: r.opts.RelayTopic, Key: []byte(to), Value: value, Headers: []kgo.RecordHeader{
		{Key: "to", Value: []byte(to)}, {Key: "from", Value: []byte(r.opts.NodeID)},
		{Key: "kind", Value: []byte(kind)}, {Key: "id", Value: []byte(id)},
	}}
}

// remote is a subscription on another node.
type remote struct {
	r    *Relay
	node string
}

// Deliver implements command.Consumer: the command goes to the node, and
// done waits for its outcome there (released if none comes in time).
func (c remote) Deliver(cmd *command.Command, done func(command.Outcome)) {
	r := c.r
	id := newID()
	f := &forwarded{done: done}
	r.mu.Lock()
	r.waiting[id] = f
	f.timer = time.AfterFunc(r.opts.OutcomeTimeout, func() { r.outcome(id, command.Released) })
	r.mu.Unlock()
	v, _ := json.Marshal(cmd)
	r.cl.Produce(context.Background(), r.relayRecord(c.node, kindCommand, id, v), func(_ *kgo.Record, err error) {
		if err != nil {
			r.log.Warn("cmdroute: command not forwarded", "to", c.node, "err", err)
			r.outcome(id, command.Released)
		}
	})
}

// outcome settles forwarded command id once.
func (r *Relay) outcome(id string, o command.Outcome) {
	r.mu.Lock()
	f := r.waiting[id]
	delete(r.waiting, id)
	r.mu.Unlock()
	if f != nil {
		f.timer.Stop()
		f.done(o)
	}
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// beat says the node is alive, and forgets stale response origins.
func (r *Relay) beat(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.opts.Heartbeat)
	defer t.Stop()
	for {
		now := time.Now()
		v, _ := json.Marshal(routeValue{At: now.UnixMilli()})
		r.produce(&kgo.Record{Topic: r.opts.RoutesTopic, Key: []byte(r.opts.NodeID + "\x00h"), Value: v}, "heartbeat")
		r.mu.Lock()
		for k, o := range r.origins {
			if now.Sub(o.at) > time.Hour {
				delete(r.origins, k)
			}
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// consume hands what cl fetches to handle until ctx ends.
func (r *Relay) consume(ctx context.Context, cl *kgo.Client, handle func(*kgo.Record)) {
	defer r.wg.Done()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			r.log.Warn("cmdroute: fetching", "topic", topic, "partition", p, "err", err)
		})
		fs.EachRecord(handle)
	}
}

// route applies a routes record to the directory.
func (r *Relay) route(rec *kgo.Record) {
	parts := strings.Split(string(rec.Key), "\x00")
	var v routeValue
	if rec.Value != nil && json.Unmarshal(rec.Value, &v) != nil {
		return
	}
	at := time.UnixMilli(v.At)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case len(parts) == 2 && parts[1] == "h":
		if rec.Value == nil {
			delete(r.alive, parts[0])
		} else {
			r.alive[parts[0]] = at
		}
	case len(parts) == 4 && (parts[1] == "d" || parts[1] == "g"):
		e := entry{parts[2], parts[3], parts[1] == "g"}
		if rec.Value == nil {
			delete(r.dir[e], parts[0])
			if len(r.dir[e]) == 0 {
				delete(r.dir, e)
			}
			return
		}
		if r.dir[e] == nil {
			r.dir[e] = map[string]time.Time{}
		}
		r.dir[e][parts[0]] = at
	}
}

func header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// relayed handles a relay record addressed to this node.
func (r *Relay) relayed(ctx context.Context, rec *kgo.Record) {
	if header(rec, "to") != r.opts.NodeID {
		return
	}
	from, id := header(rec, "from"), header(rec, "id")
	switch header(rec, "kind") {
	case kindCommand:
		var cmd command.Command
		if err := json.Unmarshal(rec.Value, &cmd); err != nil {
			r.log.Warn("cmdroute: bad command record", "from", from, "err", err)
			return
		}
		r.opts.Router.SendLocal(ctx, &cmd, func(o command.Outcome) {
			if o == command.Accepted && !cmd.OneWay() {
				r.mu.Lock()
				if len(r.origins) >= maxOrigins {
					r.origins = map[responseKey]origin{}
				}
				r.origins[responseKey{cmd.Messaging, cmd.Tenant, cmd.ReplyID, cmd.CorrelationID}] = origin{from, time.Now()}
				r.mu.Unlock()
			}
			v, _ := json.Marshal(o)
			r.produce(r.relayRecord(from, kindOutcome, id, v), "outcome")
		})
	case kindOutcome:
		var o command.Outcome
		if err := json.Unmarshal(rec.Value, &o); err == nil {
			r.outcome(id, o)
		}
	case kindResponse:
		var resp command.Response
		if err := json.Unmarshal(rec.Value, &resp); err != nil {
			r.log.Warn("cmdroute: bad response record", "from", from, "err", err)
			return
		}
		if err := r.opts.Router.RespondLocal(&resp); err != nil {
			r.log.Info("cmdroute: response not taken", "tenant", resp.Tenant, "device", resp.Device, "err", err)
		}
	}
}
