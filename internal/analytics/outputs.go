package analytics

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/analytics/engine"
	"github.com/ferry-iot/ferry/internal/analytics/fields"
	"github.com/ferry-iot/ferry/internal/analytics/query"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

// HubTopicPrefix starts the hub topics of the AMQP outputs: the rows of
// address analytics/<tenant>/<name> travel on $hono/analytics/<name> in
// the tenant, where the northbound AMQP API takes them. MQTT clients can
// neither publish nor subscribe under hono.HubPrefix, so no client can
// forge rows there.
const HubTopicPrefix = hono.HubPrefix + "analytics/"

// ContentType is the content type of rows.
const ContentType = "application/json"

// outputs hands a query's rows to its destinations. emit runs on the
// shard goroutines; the SSE subscribers and the latest rows are guarded
// by mu.
type outputs struct {
	r         *running
	mqtt      []query.MQTTOutput
	amqpTopic []string
	kafka     []string
	prom      *promSeries

	mu      sync.Mutex
	latest  map[string][]byte // user key -> last row's JSON
	subs    map[*Subscriber]struct{}
	closed  bool
	dropped atomic.Int64 // SSE rows a slow subscriber missed
	failed  atomic.Int64 // MQTT/AMQP rows the hub did not take

	kafkaFailed atomic.Int64 // Kafka rows not produced
}

func newOutputs(r *running) *outputs {
	o := &outputs{r: r, latest: map[string][]byte{}, subs: map[*Subscriber]struct{}{}}
	for _, out := range r.spec.Outputs {
		switch {
		case out.MQTT != nil:
			o.mqtt = append(o.mqtt, *out.MQTT)
		case out.AMQP != "":
			o.amqpTopic = append(o.amqpTopic, HubTopicPrefix+out.AMQP[strings.LastIndexByte(out.AMQP, '/')+1:])
		case out.Kafka != "":
			o.kafka = append(o.kafka, out.Kafka)
		case out.Prometheus != nil:
			o.prom = newPromSeries(r.plan, out.Prometheus)
		}
	}
	return o
}

func (o *outputs) describe() []string {
	var d []string
	for _, m := range o.mqtt {
		s := "mqtt " + m.Topic
		if m.Retain {
			s += " (retained)"
		}
		d = append(d, s)
	}
	for _, out := range o.r.spec.Outputs {
		if out.AMQP != "" {
			d = append(d, "amqp "+out.AMQP)
		}
		if out.Kafka != "" {
			d = append(d, "kafka "+out.Kafka)
		}
	}
	if o.prom != nil {
		d = append(d, "prometheus "+o.prom.name)
	}
	return append(d, "sse /stream and /latest")
}

// UserKey is how /latest?key= names a row's key: its values joined by
// commas.
func UserKey(key string) string { return strings.ReplaceAll(key, "\x1f", ",") }

// emit publishes one row (engine.Operator's emit function).
func (o *outputs) emit(row *engine.Row) {
	o.deliver(o.prepare(row), true)
}

// prepared is a row made ready for every output, so that it outlives the
// engine's Row (reused after emit returns): the transactional Kafka path
// sends the Kafka records inside its transaction and the rest after the
// commit.
type prepared struct {
	key   string // UserKey
	json  []byte
	mqtt  []*hub.Message
	amqp  []*hub.Message
	kafka []*kgo.Record
	prom  func()
}

func (o *outputs) prepare(row *engine.Row) *prepared {
	b := row.AppendJSON(make([]byte, 0, 256))
	r := o.r
	now := r.svc.opts.Now()
	p := &prepared{key: UserKey(row.Key), json: b}
	for _, m := range o.mqtt {
		p.mqtt = append(p.mqtt, &hub.Message{Topic: expand(m.Topic, row), Payload: b, QoS: m.QoS, Retain: m.Retain,
			ContentType: ContentType, Origin: r.sessID, Created: now})
	}
	if len(o.amqpTopic) > 0 {
		props := []hub.Property{{Key: hono.PropTenantID, Value: r.spec.Tenant}, {Key: "query", Value: r.spec.Name},
			{Key: "window_start", Value: engine.FormatTime(row.Start)}}
		if v, ok := row.Value("device_id"); ok && v.Kind == fields.String {
			props = append(props, hub.Property{Key: hono.PropDeviceID, Value: v.Str})
		}
		for _, t := range o.amqpTopic {
			p.amqp = append(p.amqp, &hub.Message{Topic: t, Payload: b, ContentType: ContentType, Origin: r.sessID, Created: now, Properties: props})
		}
	}
	for _, t := range o.kafka {
		p.kafka = append(p.kafka, o.kafkaRecord(t, row, b))
	}
	if o.prom != nil {
		p.prom = o.prom.prepare(row)
	}
	return p
}

// deliver hands a prepared row to the outputs; with kafka, to the Kafka
// outputs too (without waiting).
func (o *outputs) deliver(p *prepared, kafka bool) {
	r := o.r
	h := r.svc.opts.Hub
	for _, m := range p.mqtt {
		o.publish(h, m)
	}
	for _, m := range p.amqp {
		o.publish(h, m)
	}
	if kafka {
		o.produce(p.kafka)
	}
	if p.prom != nil {
		p.prom()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.latest[p.key]; !ok && len(o.latest) >= r.spec.MaxKeys {
		for k := range o.latest { // full: forget one
			delete(o.latest, k)
			break
		}
	}
	o.latest[p.key] = p.json
	for s := range o.subs {
		select {
		case s.C <- p.json:
		default:
			o.dropped.Add(1)
			s.Missed.Add(1)
		}
	}
}

func (o *outputs) publish(h *hub.Hub, m *hub.Message) {
	if m.QoS == 0 && !m.Retain {
		if res := h.Publish(o.r.spec.Tenant, m); res.Err != nil {
			o.failed.Add(1)
		}
		return
	}
	// A retained or QoS 1 row waits for the store; the shard goes on.
	h.PublishAsync(o.r.spec.Tenant, m, func(res hub.Result) {
		if res.Err != nil {
			o.failed.Add(1)
		}
	})
}

// expand fills a topic template's {column} and {query} from row.
func expand(tmpl string, row *engine.Row) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		b.WriteString(tmpl[:i])
		v, _ := row.Value(tmpl[i+1 : i+j])
		b.WriteString(levelText(v))
		tmpl = tmpl[i+j+1:]
	}
}

// levelText is a value as a topic level: wildcards and separators are
// replaced, so that a key cannot change the topic's shape.
func levelText(v fields.Value) string {
	var s string
	switch v.Kind {
	case fields.String:
		s = v.Str
	case fields.Number:
		s = strconv.FormatFloat(v.Num, 'f', -1, 64)
	case fields.Bool:
		s = map[bool]string{true: "true", false: "false"}[v.Num != 0]
	default:
		s = "null"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '+' || r == '#' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

// Subscriber receives a query's rows as they are emitted (SSE).
type Subscriber struct {
	C chan []byte
	// Missed counts rows that found C full.
	Missed atomic.Int64
	o      *outputs
}

// Subscribe returns a subscriber to a query's rows, with the latest row
// of each key; Cancel ends it. C is closed when the query stops.
func (s *Service) Subscribe(tenant, name string, buffer int) (*Subscriber, [][]byte, error) {
	r, err := s.get(tenant, name)
	if err != nil {
		return nil, nil, err
	}
	o := r.outputs
	sub := &Subscriber{C: make(chan []byte, buffer), o: o}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, nil, ErrNotFound
	}
	o.subs[sub] = struct{}{}
	latest := make([][]byte, 0, len(o.latest))
	for _, b := range o.latest {
		latest = append(latest, b)
	}
	return sub, latest, nil
}

// Subscribers is the number of readers of a query's rows (SSE streams).
func (s *Service) Subscribers(tenant, name string) int {
	r, err := s.get(tenant, name)
	if err != nil {
		return 0
	}
	r.outputs.mu.Lock()
	defer r.outputs.mu.Unlock()
	return len(r.outputs.subs)
}

// Cancel ends the subscription.
func (sub *Subscriber) Cancel() {
	o := sub.o
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.subs[sub]; ok {
		delete(o.subs, sub)
		close(sub.C)
	}
}

// Latest returns the last row of a key (its values joined by commas), or
// with key "" of every key.
func (s *Service) Latest(tenant, name, key string) ([][]byte, error) {
	r, err := s.get(tenant, name)
	if err != nil {
		return nil, err
	}
	o := r.outputs
	o.mu.Lock()
	defer o.mu.Unlock()
	if key != "" {
		b, ok := o.latest[key]
		if !ok {
			return nil, nil
		}
		return [][]byte{b}, nil
	}
	out := make([][]byte, 0, len(o.latest))
	for _, b := range o.latest {
		out = append(out, b)
	}
	return out, nil
}

// close ends every subscription.
func (o *outputs) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	for s := range o.subs {
		delete(o.subs, s)
		close(s.C)
	}
}
