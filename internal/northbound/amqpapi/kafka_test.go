package amqpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/kafkabridge"
	"github.com/ferry-iot/ferry/internal/northbound/amqpapi"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

const tenant = "acme"

var topics = kafkaapi.Topics{Prefix: "p."}

// kenv is a kfake cluster with the tenant's topics and a Server serving
// them to anonymous applications.
type kenv struct {
	t      *testing.T
	client []kgo.Opt
	addr   string
}

func newKafkaEnv(t *testing.T, partitions int32) *kenv {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics.Telemetry(tenant), topics.Event(tenant)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	client := []kgo.Opt{kgo.SeedBrokers(kc.ListenAddrs()...)}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := kafkabridge.New(kafkabridge.Options{Client: client, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	srv := amqpapi.New(amqpapi.Options{Anonymous: true, Logger: log, Bridge: b, Kafka: b, KafkaTopics: topics})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); err != nil {
		t.Fatal(err)
	}
	// Before the bridge closes: the links end first.
	t.Cleanup(func() { srv.Close() })
	return &kenv{t: t, client: client, addr: srv.Addr().String()}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *kenv) session() *goamqp.Session {
	e.t.Helper()
	ctx := testCtx(e.t)
	c, err := goamqp.Dial(ctx, "amqp://"+e.addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// receiver attaches to addr in the group of name (none: "").
func receiver(t *testing.T, s *goamqp.Session, addr, name string, opts *goamqp.ReceiverOptions) *goamqp.Receiver {
	t.Helper()
	if opts == nil {
		opts = &goamqp.ReceiverOptions{Credit: 10}
	}
	if name != "" {
		opts.Properties = map[string]any{string(amqpapi.SubscriptionName): name}
	}
	r, err := s.NewReceiver(testCtx(t), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// produce writes recs, each to the partition it names.
func (e *kenv) produce(recs ...*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(append(e.client, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(testCtx(e.t), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// committed is the group's committed offsets of topic.
func (e *kenv) committed(group, topic string) map[int32]int64 {
	e.t.Helper()
	cl, err := kgo.NewClient(e.client...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group // and no topics: all of the group's
	resp, err := req.RequestWith(testCtx(e.t), cl)
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[int32]int64{}
	add := func(t string, p int32, off int64) {
		if t == topic && off >= 0 {
			got[p] = off
		}
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, p.Partition, p.Offset)
			}
		}
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			add(t.Topic, p.Partition, p.Offset)
		}
	}
	return got
}

// members is the number of members of a stable group, 0 while it is not.
func (e *kenv) members(group string) int {
	e.t.Helper()
	cl, err := kgo.NewClient(e.client...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(testCtx(e.t), cl)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(resp.Groups) != 1 || resp.Groups[0].State != "Stable" {
		return 0
	}
	return len(resp.Groups[0].Members)
}

// eventually polls cond until it holds or 10s passed.
func eventually(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// waitStarted waits until the group of members links has committed its
// start on every partition: records produced from then on reach it.
func (e *kenv) waitStarted(group, topic string, members, partitions int) {
	e.t.Helper()
	var m int
	var c map[int32]int64
	eventually(e.t, func() string {
		return fmt.Sprintf("start of group %s with %d members: %d members, committed %v", group, members, m, c)
	}, func() bool {
		m, c = e.members(group), e.committed(group, topic)
		return m == members && len(c) == partitions
	})
}

func receive(t *testing.T, r *goamqp.Receiver) *goamqp.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("receive on %s: %v", r.Address(), err)
	}
	return m
}

func accept(t *testing.T, r *goamqp.Receiver, m *goamqp.Message) {
	t.Helper()
	if err := r.AcceptMessage(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
}

func body(m *goamqp.Message) string { return string(m.GetData()) }

// deviceMessage is what the downstream path makes of a device's message.
func deviceMessage(payload string, created time.Time, ttl time.Duration) *hub.Message {
	m := &hub.Message{
		Payload:     []byte(payload),
		ContentType: "application/json",
		Created:     created,
		Properties: []hub.Property{
			{Key: hono.PropDeviceID, Value: "dev-1"},
			{Key: hono.PropOrigAdapter, Value: "hono-mqtt"},
			{Key: hono.PropOrigAddress, Value: "telemetry"},
			{Key: hono.PropQoS, Value: int64(1)},
			{Key: hono.PropTTD, Value: int64(-1)},
			{Key: hono.AnnotationRetain, Value: true},
		},
		UserProperties: []hub.UserProperty{{Key: "color", Value: "red"}, {Key: hono.PropQoS, Value: "not the qos"}},
	}
	if ttl > 0 {
		m.Expiry = created.Add(ttl)
	}
	return m
}

// TestKafkaTelemetryAndEvents: records as kafkaapi produces them arrive
// as Hono's AMQP messages; an expired one does not.
func TestKafkaTelemetryAndEvents(t *testing.T) {
	e := newKafkaEnv(t, 1)
	s := e.session()
	tel := receiver(t, s, "telemetry/"+tenant, "", nil)
	ev := receiver(t, s, "event/"+tenant, "", nil)
	e.waitStarted(amqpapi.KafkaGroup(hono.Telemetry, tenant, ""), topics.Telemetry(tenant), 1, 1)
	e.waitStarted(amqpapi.KafkaGroup(hono.Event, tenant, ""), topics.Event(tenant), 1, 1)

	created := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	e.produce(
		kafkaapi.Record(topics.Telemetry(tenant), "dev-1", deviceMessage(`{"temp":21}`, created, 0)),
		kafkaapi.Record(topics.Event(tenant), "dev-1", deviceMessage(`{"old":true}`, created.Add(-time.Hour), time.Minute)),
		kafkaapi.Record(topics.Event(tenant), "dev-1", deviceMessage(`{"door":"open"}`, created, time.Hour)),
	)

	m := receive(t, tel)
	accept(t, tel, m)
	if body(m) != `{"temp":21}` {
		t.Errorf("telemetry body %q", body(m))
	}
	if m.Properties == nil || m.Properties.ContentType == nil || *m.Properties.ContentType != "application/json" {
		t.Errorf("telemetry properties %+v: no content-type application/json", m.Properties)
	}
	if m.Properties != nil && (m.Properties.CreationTime == nil || !m.Properties.CreationTime.Equal(created)) {
		t.Errorf("telemetry creation-time %v, want %v", m.Properties.CreationTime, created)
	}
	want := map[string]any{
		hono.PropDeviceID: "dev-1", hono.PropOrigAdapter: "hono-mqtt", hono.PropOrigAddress: "telemetry",
		hono.PropQoS: int32(1), hono.PropTTD: int32(-1), "color": "red",
	}
	for k, v := range want {
		if got := m.ApplicationProperties[k]; got != v {
			t.Errorf("telemetry application property %s = %#v, want %#v", k, got, v)
		}
	}
	if len(m.ApplicationProperties) != len(want) {
		t.Errorf("telemetry application properties %v, want %v", m.ApplicationProperties, want)
	}
	if got := m.Annotations[hono.AnnotationRetain]; got != true {
		t.Errorf("telemetry annotation %s = %#v, want true", hono.AnnotationRetain, got)
	}
	if m.Header != nil && m.Header.Durable {
		t.Error("telemetry is durable")
	}

	// The expired event is skipped: the live one comes first.
	m = receive(t, ev)
	accept(t, ev, m)
	if body(m) != `{"door":"open"}` {
		t.Fatalf("event body %q, want the unexpired event", body(m))
	}
	if m.Header == nil || !m.Header.Durable || m.Header.TTL != time.Hour {
		t.Errorf("event header %+v, want durable with ttl 1h", m.Header)
	}
	e.waitCommitted(amqpapi.KafkaGroup(hono.Event, tenant, ""), topics.Event(tenant), 0, 2)
}

// waitCommitted waits until group committed want on topic's partition.
func (e *kenv) waitCommitted(group, topic string, partition int32, want int64) {
	e.t.Helper()
	var got map[int32]int64
	eventually(e.t, func() string { return fmt.Sprintf("commit of %d by %s: committed %v", want, group, got) }, func() bool {
		got = e.committed(group, topic)
		return got[partition] == want
	})
}

// TestKafkaGroups: links of one subscription name share the topic's
// partitions; another name gets everything.
func TestKafkaGroups(t *testing.T) {
	const partitions = 4
	e := newKafkaEnv(t, partitions)
	s := e.session()
	addr := "telemetry/" + tenant
	shared := []*goamqp.Receiver{receiver(t, s, addr, "s", nil), receiver(t, s, addr, "s", nil)}
	other := receiver(t, s, addr, "t", nil)
	e.waitStarted(amqpapi.KafkaGroup(hono.Telemetry, tenant, "s"), topics.Telemetry(tenant), 2, partitions)
	e.waitStarted(amqpapi.KafkaGroup(hono.Telemetry, tenant, "t"), topics.Telemetry(tenant), 1, partitions)

	const n = 20
	var recs []*kgo.Record
	for i := range n {
		r := kafkaapi.Record(topics.Telemetry(tenant), fmt.Sprintf("dev-%d", i%partitions), deviceMessage(fmt.Sprint(i), time.Now(), 0))
		r.Partition = int32(i % partitions)
		recs = append(recs, r)
	}
	e.produce(recs...)

	type got struct {
		link int
		body string
	}
	ctx := testCtx(t)
	ch := make(chan got, 2*n)
	for i, r := range append(shared, other) {
		go func() {
			for {
				m, err := r.Receive(ctx, nil)
				if err != nil {
					return
				}
				_ = r.AcceptMessage(ctx, m)
				ch <- got{i, body(m)}
			}
		}()
	}
	byLink := map[int]map[string]bool{0: {}, 1: {}, 2: {}}
	for len(byLink[0])+len(byLink[1]) < n || len(byLink[2]) < n {
		select {
		case g := <-ch:
			if byLink[g.link][g.body] {
				t.Errorf("link %d got %s twice", g.link, g.body)
			}
			byLink[g.link][g.body] = true
		case <-ctx.Done():
			t.Fatalf("received %d, %d (group s) and %d (group t) of %d", len(byLink[0]), len(byLink[1]), len(byLink[2]), n)
		}
	}
	if len(byLink[0]) == 0 || len(byLink[1]) == 0 {
		t.Errorf("group s: %d and %d messages, want them shared", len(byLink[0]), len(byLink[1]))
	}
	for b := range byLink[0] {
		if byLink[1][b] {
			t.Errorf("both links of group s got %s", b)
		}
	}
}

// TestKafkaEventsResume: released events come again; a link that ends
// leaves its group committed up to the first event not settled, where
// the next link of the group resumes.
func TestKafkaEventsResume(t *testing.T) {
	e := newKafkaEnv(t, 1)
	s := e.session()
	addr := "event/" + tenant
	group := amqpapi.KafkaGroup(hono.Event, tenant, "e")
	r := receiver(t, s, addr, "e", nil)
	e.waitStarted(group, topics.Event(tenant), 1, 1)
	var recs []*kgo.Record
	for i := range 6 {
		recs = append(recs, kafkaapi.Record(topics.Event(tenant), "dev-1", deviceMessage(fmt.Sprintf("e%d", i), time.Now(), time.Hour)))
	}
	e.produce(recs...)

	ms := make([]*goamqp.Message, 6)
	for i := range ms {
		ms[i] = receive(t, r)
		if body(ms[i]) != fmt.Sprintf("e%d", i) {
			t.Fatalf("event %d: %q", i, body(ms[i]))
		}
	}
	for _, i := range []int{0, 1, 2, 4} {
		accept(t, r, ms[i])
	}
	if err := r.ReleaseMessage(testCtx(t), ms[3]); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, r); body(m) != "e3" {
		t.Fatalf("after the release: %q, want e3 again", body(m))
	}
	// e3 and e5 stay unsettled.
	e.waitCommitted(group, topics.Event(tenant), 0, 3)
	if err := r.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	r = receiver(t, s, addr, "e", nil)
	for _, want := range []string{"e3", "e4", "e5"} {
		m := receive(t, r)
		if body(m) != want {
			t.Fatalf("after the reattach: %q, want %s", body(m), want)
		}
		accept(t, r, m)
	}
	e.waitCommitted(group, topics.Event(tenant), 0, 6)
}

// TestKafkaPresettled: a link in settled mode is at most once: what was
// sent is committed without any outcome.
func TestKafkaPresettled(t *testing.T) {
	e := newKafkaEnv(t, 1)
	s := e.session()
	group := amqpapi.KafkaGroup(hono.Telemetry, tenant, "")
	r := receiver(t, s, "telemetry/"+tenant, "", &goamqp.ReceiverOptions{Credit: 10, RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr()})
	e.waitStarted(group, topics.Telemetry(tenant), 1, 1)
	e.produce(
		kafkaapi.Record(topics.Telemetry(tenant), "dev-1", deviceMessage("a", time.Now(), 0)),
		kafkaapi.Record(topics.Telemetry(tenant), "dev-1", deviceMessage("b", time.Now(), 0)),
	)
	for _, want := range []string{"a", "b"} {
		if m := receive(t, r); body(m) != want {
			t.Fatalf("got %q, want %s", body(m), want)
		}
	}
	e.waitCommitted(group, topics.Telemetry(tenant), 0, 2)
}
