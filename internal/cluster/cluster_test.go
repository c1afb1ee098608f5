package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-iot/ferry/internal/hub"
)

const waitLimit = 10 * time.Second

// newKafka starts an in-memory Kafka for one test.
func newKafka(t *testing.T) *kfake.Cluster {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

type node struct {
	h *hub.Hub
	c *Cluster
}

// startNode starts a hub and its Cluster on kc; the Cluster is closed when
// the test ends, before kc.
func startNode(t *testing.T, kc *kfake.Cluster, id string, hopts hub.Options, edit ...func(*Options)) node {
	t.Helper()
	h := hub.New(hopts)
	opts := Options{
		Brokers:         kc.ListenAddrs(),
		NodeID:          id,
		Partitions:      3,
		DeliveryTimeout: time.Second,
		Logger:          slog.New(slog.DiscardHandler),
	}
	for _, e := range edit {
		e(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := Start(ctx, h, opts)
	if err != nil {
		t.Fatalf("starting node %s: %v", id, err)
	}
	t.Cleanup(c.Close)
	return node{h, c}
}

// sink records deliveries and signals each one.
type sink struct {
	mu     sync.Mutex
	got    []hub.Delivery
	signal chan struct{}
}

func (s *sink) Deliver(d hub.Delivery) bool {
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
	return true
}

func (s *sink) deliveries() []hub.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func (s *sink) payloads() []string {
	var out []string
	for _, d := range s.deliveries() {
		out = append(out, string(d.Message.Payload))
	}
	return out
}

// waitPayload waits until payload has been delivered.
func (s *sink) waitPayload(t *testing.T, payload string) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for !slices.Contains(s.payloads(), payload) {
		select {
		case <-s.signal:
		case <-deadline.C:
			t.Fatalf("%q not delivered; got %q", payload, s.payloads())
		}
	}
}

// subscriber opens a connected session on n with the subscriptions.
func subscriber(n node, tenant, id string, subs ...hub.Subscription) (*hub.Session, *sink) {
	s, _ := n.h.Open(tenant, id, true)
	k := &sink{signal: make(chan struct{}, 1)}
	s.Attach(k)
	for _, sub := range subs {
		s.Subscribe(sub)
	}
	return s, k
}

// waitFor polls cond, for state with no signal of its own.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func publish(t *testing.T, n node, tenant string, m *hub.Message) {
	t.Helper()
	if res := n.h.Publish(tenant, m); res.Err != nil {
		t.Fatalf("publish %s on %s: %v", m.Topic, n.c.NodeID(), res.Err)
	}
}

func TestMessagesCrossNodesOnce(t *testing.T) {
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{})
	b := startNode(t, kc, "b", hub.Options{})
	all := hub.Subscription{Filter: "sensors/#", QoS: 2, ID: 5}
	_, onA := subscriber(a, "T", "local", all)
	_, onB := subscriber(b, "T", "remote", all)
	_, otherTenant := subscriber(b, "U", "x", all)

	m1 := full()
	m1.Retain = false
	m1.Expiry = time.Now().Add(time.Hour).Truncate(time.Millisecond)
	publish(t, a, "T", m1)
	publish(t, a, "T", &hub.Message{Topic: m1.Topic, QoS: 1, Payload: []byte("m2")})
	onB.waitPayload(t, "m2")
	got := onB.deliveries()
	if len(got) != 2 {
		t.Fatalf("node b got %q, want m1 and m2 once each", onB.payloads())
	}
	d := got[0]
	if v, want := viewOf(d.Message), viewOf(m1); !reflect.DeepEqual(v, want) {
		t.Errorf("node b got\n%+v\nwant\n%+v", v, want)
	}
	if d.QoS != 2 || !slices.Equal(d.SubscriptionIDs, []uint32{5}) {
		t.Errorf("delivery QoS %d ids %v, want 2 [5]", d.QoS, d.SubscriptionIDs)
	}

	// The other way; each node's own records come back through Kafka and
	// must not be delivered again: a later record on the same topic (one
	// partition, in order) proves the earlier ones were skipped.
	publish(t, b, "T", &hub.Message{Topic: m1.Topic, QoS: 1, Payload: []byte("m3")})
	onA.waitPayload(t, "m3")
	publish(t, a, "T", &hub.Message{Topic: "$SYS/broker/uptime", QoS: 1, Retain: true, Payload: []byte("1 seconds")}) // stays on a
	publish(t, a, "T", &hub.Message{Topic: m1.Topic, Payload: []byte("m4")})                                          // QoS 0 too
	onB.waitPayload(t, "m4")
	publish(t, b, "T", &hub.Message{Topic: m1.Topic, Payload: []byte("m5")})
	onA.waitPayload(t, "m5")
	want := []string{string(m1.Payload), "m2", "m3", "m4", "m5"}
	if got := onA.payloads(); !slices.Equal(got, want) {
		t.Errorf("node a's subscriber got %q, want %q", got, want)
	}
	if got := onB.payloads(); !slices.Equal(got, want) {
		t.Errorf("node b's subscriber got %q, want %q", got, want)
	}
	if n := len(otherTenant.deliveries()); n != 0 {
		t.Errorf("another tenant got %d messages", n)
	}
	// m4 (QoS 0) reached b; its acknowledgement may still be on its way.
	// Four records: m1, m2 and m4, not the $SYS message, and the claim of
	// session "local"; consumed: m3, m5 and the claims of b's two sessions.
	waitFor(t, "4 records acknowledged", func() bool { return a.c.Stats().Produced == 4 })
	waitFor(t, "4 records consumed", func() bool { return a.c.Stats().Consumed == 4 })
	if st := a.c.Stats(); st.ProduceErrors != 0 || st.DecodeErrors != 0 {
		t.Errorf("node a stats %+v, want no errors", st)
	}
}

func TestNoLocalAcrossNodes(t *testing.T) {
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{})
	b := startNode(t, kc, "b", hub.Options{})
	// The same client ID on b as the publisher on a: no-local holds by
	// origin, wherever the publisher is.
	_, self := subscriber(b, "T", "dev", hub.Subscription{Filter: "x", QoS: 1, NoLocal: true})
	_, other := subscriber(b, "T", "app", hub.Subscription{Filter: "x", QoS: 1})
	publish(t, a, "T", &hub.Message{Topic: "x", QoS: 1, Payload: []byte("own"), Origin: "dev"})
	publish(t, a, "T", &hub.Message{Topic: "x", QoS: 1, Payload: []byte("theirs"), Origin: "someone"})
	other.waitPayload(t, "theirs")
	self.waitPayload(t, "theirs")
	if got := self.payloads(); !slices.Equal(got, []string{"theirs"}) {
		t.Errorf("no-local subscriber got %q", got)
	}
	if got := other.deliveries(); len(got) != 2 || got[0].Message.Origin != "dev" {
		t.Errorf("plain subscriber got %d messages, first from %q", len(got), got[0].Message.Origin)
	}
}

func TestRetainedAcrossNodes(t *testing.T) {
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{})
	b := startNode(t, kc, "b", hub.Options{})
	_, live := subscriber(b, "T", "live", hub.Subscription{Filter: "cfg/#", QoS: 1, RetainAsPublished: true})
	set := &hub.Message{Topic: "cfg/x", QoS: 1, Retain: true, Payload: []byte("on"), ContentType: "text/plain",
		UserProperties: []hub.UserProperty{{Key: "k", Value: "v"}}}
	publish(t, a, "T", set)
	publish(t, a, "T", &hub.Message{Topic: "cfg/gone", QoS: 1, Retain: true, Payload: []byte("x"), Expiry: time.Now().Add(time.Minute)})
	live.waitPayload(t, "on")
	if d := live.deliveries()[0]; !d.Retain {
		t.Error("live delivery lost its retain flag (retain as published)")
	}

	// A node started afterwards has the retained messages once Start
	// returned, and no more: its clock is an hour ahead, so cfg/gone has
	// expired there.
	c := startNode(t, kc, "c", hub.Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	late, _ := c.h.Open("T", "late", true)
	ret, _ := late.Subscribe(hub.Subscription{Filter: "cfg/#", QoS: 1})
	if len(ret) != 1 || !reflect.DeepEqual(viewOf(ret[0].Message), viewOf(set)) {
		var got []view
		for _, d := range ret {
			got = append(got, viewOf(d.Message))
		}
		t.Fatalf("late node's retained messages %+v, want %+v", got, viewOf(set))
	}

	// Clearing on a clears everywhere.
	publish(t, a, "T", &hub.Message{Topic: "cfg/x", QoS: 1, Retain: true})
	publish(t, a, "T", &hub.Message{Topic: "cfg/gone", QoS: 1, Retain: true})
	for _, n := range []node{a, b, c} {
		waitFor(t, "retained messages cleared on "+n.c.NodeID(), func() bool { return n.h.Stats().Retained == 0 })
	}
}

func TestRetainedConverges(t *testing.T) {
	kc := newKafka(t)
	one := func(o *Options) { o.Partitions = 1 } // one order for every key
	a := startNode(t, kc, "a", hub.Options{}, one)
	b := startNode(t, kc, "b", hub.Options{}, one)
	// Both nodes set the topic at once, many times; once every record is
	// acknowledged, each sets a marker. A node that has the other's marker
	// has read every earlier record, and both must then hold the same
	// value: the topic's last.
	var acked sync.WaitGroup
	for _, n := range []node{a, b} {
		for i := range 20 {
			acked.Add(1)
			go n.h.PublishAsync("T", &hub.Message{Topic: "r", QoS: 1, Retain: true, Payload: []byte(strconv.Itoa(i)), Origin: n.c.NodeID()},
				func(hub.Result) { acked.Done() })
		}
	}
	acked.Wait()
	publish(t, a, "T", &hub.Message{Topic: "marker/a", QoS: 1, Retain: true, Payload: []byte("m")})
	publish(t, b, "T", &hub.Message{Topic: "marker/b", QoS: 1, Retain: true, Payload: []byte("m")})
	retained := func(n node, topic string) string {
		s, _ := n.h.Open("T", "probe", true)
		defer s.Detach(hub.Departure{})
		ret, _ := s.Subscribe(hub.Subscription{Filter: topic})
		if len(ret) != 1 {
			return ""
		}
		return ret[0].Message.Origin + ":" + string(ret[0].Message.Payload)
	}
	waitFor(t, "b's marker on a", func() bool { return retained(a, "marker/b") != "" })
	waitFor(t, "a's marker on b", func() bool { return retained(b, "marker/a") != "" })
	if ra, rb := retained(a, "r"), retained(b, "r"); ra != rb || ra == "" {
		t.Errorf("nodes disagree on the retained message: a has %q, b has %q", ra, rb)
	}
}

func TestNewPartitionsConsumed(t *testing.T) {
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{}, func(o *Options) {
		o.partitionCheck = 5 * time.Millisecond
		// franz-go's 5 s metadata age and fetch wait would hold the new
		// partition back.
		o.Kafka = []kgo.Opt{kgo.MetadataMinAge(10 * time.Millisecond), kgo.FetchMaxWait(50 * time.Millisecond)}
	})
	_, k := subscriber(a, "T", "s", hub.Subscription{Filter: "#"})

	raw, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = DefaultTopic, 4
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), raw)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("adding a partition: %v %+v", err, resp)
	}
	// Another node's message in the new partition, before a looks.
	r := encode(DefaultTopic, "T", "z", &hub.Message{Topic: "new", Payload: []byte("in partition 3")}, false)
	r.Partition = 3
	if err := raw.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	k.waitPayload(t, "in partition 3")
}

func TestExpiredNotDelivered(t *testing.T) {
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{})
	later := func() time.Time { return time.Now().Add(time.Hour) } // b's clock is an hour ahead
	b := startNode(t, kc, "b", hub.Options{Now: later})
	_, k := subscriber(b, "T", "s", hub.Subscription{Filter: "e", QoS: 1})
	publish(t, a, "T", &hub.Message{Topic: "e", QoS: 1, Payload: []byte("stale"), Expiry: time.Now().Add(time.Minute)})

	// A record some other tool wrote: skipped and counted.
	raw, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.ProduceSync(context.Background(), &kgo.Record{Topic: DefaultTopic, Key: []byte("T\x00e"), Value: []byte("?"),
		Headers: []kgo.RecordHeader{{Key: HeaderQoS, Value: []byte("9")}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	publish(t, a, "T", &hub.Message{Topic: "e", QoS: 1, Payload: []byte("fresh")})
	k.waitPayload(t, "fresh")
	if got := k.payloads(); !slices.Equal(got, []string{"fresh"}) {
		t.Errorf("got %q, want only the unexpired message", got)
	}
	if n := b.h.Stats().Drops[hub.DropExpired]; n != 1 {
		t.Errorf("expired drops %d, want 1", n)
	}
	if n := b.c.Stats().DecodeErrors; n != 1 {
		t.Errorf("decode errors %d, want 1", n)
	}
}

func TestAckWaitsForKafka(t *testing.T) {
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{})
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	kc.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		once.Do(func() { close(held) })
		kc.SleepControl(func() { <-release })
		kc.DropControl()
		return nil, nil, false // now let Kafka handle it
	})
	done := make(chan hub.Result, 1)
	a.h.PublishAsync("T", &hub.Message{Topic: "q", QoS: 1, Payload: []byte("1")}, func(r hub.Result) { done <- r })
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("no produce request reached Kafka")
	}

	// QoS 0 does not wait, even with Kafka stalled.
	qos0 := false
	a.h.PublishAsync("T", &hub.Message{Topic: "q0", Payload: []byte("0")}, func(hub.Result) { qos0 = true })
	if !qos0 {
		t.Error("QoS 0 publish waited for Kafka")
	}
	select {
	case r := <-done:
		t.Fatalf("QoS 1 publish completed (%+v) before Kafka acknowledged it", r)
	default:
	}
	close(release)
	select {
	case r := <-done:
		if r.Err != nil {
			t.Fatalf("publish failed: %v", r.Err)
		}
	case <-time.After(waitLimit):
		t.Fatal("QoS 1 publish never completed")
	}
	if st := a.c.Stats(); st.Produced < 1 {
		t.Errorf("stats %+v after an acknowledged produce", st)
	}
}

func TestKafkaUnreachable(t *testing.T) {
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{})
	kc.Close()
	start := time.Now()
	res := a.h.Publish("T", &hub.Message{Topic: "q", QoS: 1, Payload: []byte("lost")})
	if res.Err == nil {
		t.Fatal("QoS 1 publish succeeded with Kafka gone")
	}
	t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), res.Err)
	if st := a.c.Stats(); st.ProduceErrors == 0 {
		t.Errorf("stats %+v: no produce error counted", st)
	}
	a.c.Close()
	res = a.h.Publish("T", &hub.Message{Topic: "q", QoS: 1})
	if !errors.Is(res.Err, ErrClosed) {
		t.Errorf("publish after Close: %v, want ErrClosed", res.Err)
	}
}

func TestStartFailsWithoutKafka(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	h := hub.New(hub.Options{})
	if _, err := Start(ctx, h, Options{Brokers: []string{addr}, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Fatal("Start succeeded without Kafka")
	}
	noLeaks(t, before)
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	kc := newKafka(t)
	before := runtime.NumGoroutine()
	a := startNode(t, kc, "a", hub.Options{}, func(o *Options) { o.partitionCheck = 10 * time.Millisecond })
	b := startNode(t, kc, "b", hub.Options{})
	_, k := subscriber(b, "T", "s", hub.Subscription{Filter: "#", QoS: 1})
	publish(t, a, "T", &hub.Message{Topic: "x", QoS: 1, Retain: true, Payload: []byte("p")})
	k.waitPayload(t, "p")
	a.c.Close()
	b.c.Close()
	a.c.Close() // twice is fine
	noLeaks(t, before)
}

// noLeaks waits until the goroutines are back to before.
func noLeaks(t *testing.T, before int) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for runtime.NumGoroutine() > before {
		select {
		case <-tick.C:
		case <-deadline.C:
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}

func TestRetainedSurvivesRestartWithSameID(t *testing.T) {
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{})
	publish(t, a, "T", &hub.Message{Topic: "cfg", QoS: 1, Retain: true, Payload: []byte("kept")})
	a.c.Close()
	// The same node ID after a restart: its own earlier records are the
	// retained messages too.
	again := startNode(t, kc, "a", hub.Options{})
	s, _ := again.h.Open("T", "late", true)
	if ret, _ := s.Subscribe(hub.Subscription{Filter: "cfg"}); len(ret) != 1 || string(ret[0].Message.Payload) != "kept" {
		t.Fatalf("restarted node has retained %v, want kept", ret)
	}
}

// TestRetainedOrder plays records of the retained topic against a node's
// own retained publishes still on their way: the node ends with the
// topic's last record, and never goes back to a value older than its own.
func TestRetainedOrder(t *testing.T) {
	type step struct {
		local   string // this node ("a") sets the retained message locally
		failed  bool   // this node's oldest pending record failed
		node    string // a record read from the topic, from node
		payload string // its payload; "" for a tombstone
		want    string // the retained payload afterwards; "" for none
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"other node", []step{{node: "b", payload: "b1", want: "b1"}, {node: "b", want: ""}}},
		{"earlier run of this node", []step{{node: "a", payload: "a0", want: "a0"}}},
		{"own, then a later other", []step{
			{local: "a1", want: "a1"},
			{node: "a", payload: "a1", want: "a1"},
			{node: "b", payload: "b1", want: "b1"},
		}},
		{"an older other, then own", []step{
			{local: "a1", want: "a1"},
			{node: "b", payload: "b1", want: "a1"}, // older than a1: not shown
			{node: "a", payload: "a1", want: "a1"},
		}},
		{"own, produced in another order", []step{
			{local: "x", want: "x"},
			{local: "y", want: "y"},
			{node: "a", payload: "y", want: "y"},
			{node: "a", payload: "x", want: "x"}, // the topic's order wins
		}},
		{"own produce failed", []step{
			{local: "a1", want: "a1"},
			{failed: true, want: "a1"},
			{node: "b", payload: "b1", want: "b1"},
		}},
		{"own clear", []step{
			{node: "b", payload: "b1", want: "b1"},
			{local: "", want: ""},
			{node: "a", payload: "", want: ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hub.New(hub.Options{})
			c := &Cluster{h: h, opts: Options{NodeID: "a", RetainedTopic: DefaultRetainedTopic}, pending: map[string]int{},
				log: slog.New(slog.DiscardHandler)}
			key := string(recordKey("T", "r"))
			for i, st := range tt.steps {
				switch {
				case st.failed:
					c.readBack(key)
				case st.node == "":
					// What Publish does: the local store, then Relay.
					c.pending[key]++
					h.ApplyRetained("T", &hub.Message{Topic: "r", Retain: true, Payload: []byte(st.local)})
				default:
					m := &hub.Message{Topic: "r", Retain: true, Payload: []byte(st.payload)}
					c.handleRetained(encode(DefaultRetainedTopic, "T", st.node, m, st.payload == ""))
				}
				s, _ := h.Open("T", "probe", true)
				ret, _ := s.Subscribe(hub.Subscription{Filter: "r"})
				s.Detach(hub.Departure{})
				got := ""
				if len(ret) == 1 {
					got = string(ret[0].Message.Payload)
				}
				if got != st.want {
					t.Fatalf("step %d: retained %q, want %q", i, got, st.want)
				}
			}
		})
	}
}

// TestRetainedCatchUpGap: a retained partition whose end offset no record
// reaches (here the commit marker of a transaction another producer wrote;
// in production also tombstones compacted away) does not keep a node from
// starting: the catch-up ends once it fetches nothing for catchUpIdle.
func TestRetainedCatchUpGap(t *testing.T) {
	defer func(d time.Duration) { catchUpIdle = d }(catchUpIdle)
	catchUpIdle = 300 * time.Millisecond
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{})
	if res := a.h.Publish("t", &hub.Message{Topic: "state", Payload: []byte("on"), Retain: true, QoS: 1}); res.Err != nil {
		t.Fatal(res.Err)
	}
	tx, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.TransactionalID("other-tool"),
		kgo.DefaultProduceTopic(DefaultRetainedTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Key: []byte("t\x00other"), Value: []byte("not ferry's")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, kc, "b", hub.Options{}) // fails after waitLimit without the idle bound
	// The transaction's record carries no headers: a retained message of
	// tenant t all the same, by its key.
	if got := b.h.Stats().Retained; got != 2 {
		t.Errorf("node b holds %d retained messages, want 2", got)
	}
}

// evictSink is a sink whose connection can be evicted.
type evictSink struct {
	sink
	evicted atomic.Int32
}

func (s *evictSink) Evict() { s.evicted.Add(1) }

// TestTakeOverAcrossNodes: a client that connects on node b closes its
// older connection on node a (one connection per client ID, cluster-wide);
// connecting on the same node again, or another client, closes nothing.
func TestTakeOverAcrossNodes(t *testing.T) {
	kc := newKafka(t)
	a := startNode(t, kc, "a", hub.Options{})
	b := startNode(t, kc, "b", hub.Options{})
	attach := func(n node, id string) *evictSink {
		s, _ := n.h.Open("T", id, true)
		k := &evictSink{sink: sink{signal: make(chan struct{}, 1)}}
		s.Attach(k)
		return k
	}
	old := attach(a, "dev-1")
	other := attach(a, "dev-2")
	fresh := attach(b, "dev-1")
	waitFor(t, "dev-1's connection on node a evicted", func() bool { return old.evicted.Load() == 1 })

	// Back to node a: the claim reaches b, whose connection is older.
	again := attach(a, "dev-1")
	waitFor(t, "dev-1's connection on node b evicted", func() bool { return fresh.evicted.Load() == 1 })
	// A later record on the same partition proves a's own claim was read
	// and ignored by a: the newest connection stays.
	marker := attach(b, "dev-1")
	waitFor(t, "node b's claim read by a", func() bool { return again.evicted.Load() == 1 })
	if n := other.evicted.Load(); n != 0 {
		t.Errorf("dev-2 evicted %d times", n)
	}
	if n := marker.evicted.Load(); n != 0 {
		t.Errorf("the newest connection evicted %d times", n)
	}
}

// TestTakeOverIgnoresOlderClaims: a claim made before the local connection
// attached (the client came back meanwhile) closes nothing.
func TestTakeOverIgnoresOlderClaims(t *testing.T) {
	h := hub.New(hub.Options{})
	s, _ := h.Open("T", "dev", true)
	k := &evictSink{sink: sink{signal: make(chan struct{}, 1)}}
	before := time.Now().Add(-time.Second)
	s.Attach(k)
	h.TakeOver("T", "dev", before)
	h.TakeOver("T", "other", time.Now())
	h.TakeOver("U", "dev", time.Now())
	if n := k.evicted.Load(); n != 0 {
		t.Fatalf("evicted %d times by an older claim or another client", n)
	}
	h.TakeOver("T", "dev", time.Now().Add(time.Second))
	if n := k.evicted.Load(); n != 1 {
		t.Fatalf("evicted %d times by a newer claim, want 1", n)
	}
}
