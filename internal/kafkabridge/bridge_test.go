package kafkabridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/northbound/amqpapi"
)

// testApps are the applications of the tests' listener, by user name;
// the password is the name.
var testApps = map[string]*amqpapi.Application{
	"all":  {Name: "all", Tenants: []string{"*"}},
	"acme": {Name: "acme", Tenants: []string{"acme"}},
}

// env is a kfake cluster, a bridge on it and an AMQP listener serving the
// bridge's links.
type env struct {
	t      testing.TB
	client []kgo.Opt
	bridge *Bridge
	addr   string
}

// newEnv seeds topics with partitions each.
func newEnv(t testing.TB, partitions int, topics ...string) *env {
	t.Helper()
	return newEnvWith(t, nil, partitions, topics...)
}

// newEnvWith is newEnv with the bridge's options changed by mutate.
func newEnvWith(t testing.TB, mutate func(*Options), partitions int, topics ...string) *env {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	client := []kgo.Opt{kgo.SeedBrokers(kc.ListenAddrs()...)}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := Options{
		Client:    client,
		AppTopics: map[string][]string{"acme": {"shared.*", "exact"}},
		Reserved:  []string{"ferry.messages"},
		Logger:    log,
	}
	if mutate != nil {
		mutate(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := amqp.Listen(ln, &amqp.ListenerOptions{
		Handler: amqp.HandlerFunc(func(req *amqp.LinkRequest) error {
			app := testApps[req.Conn.AuthIdentity()]
			if app == nil {
				return &amqp.Error{Condition: amqp.CondUnauthorizedAccess}
			}
			return b.HandleLink(req, app)
		}),
		SASLMechanisms: []amqp.Symbol{amqp.SASLPlain},
		Authenticate: func(_ context.Context, req *amqp.AuthRequest) (string, error) {
			if testApps[req.Username] == nil || req.Password != req.Username {
				return "", errors.New("no")
			}
			return req.Username, nil
		},
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Listener first: links end before the bridge waits for them.
	t.Cleanup(b.Close)
	t.Cleanup(func() { l.Close() })
	return &env{t: t, client: client, bridge: b, addr: l.Addr().String()}
}

// testWriter shows a test's logs with its output.
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

// session dials as user and begins a session.
func (e *env) session(user string) *goamqp.Session {
	e.t.Helper()
	ctx := testCtx(e.t)
	c, err := goamqp.Dial(ctx, "amqp://"+e.addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain(user, user)})
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

// produce writes records with franz-go, waiting for each.
func (e *env) produce(recs ...*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(e.client...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(testCtx(e.t), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// records reads topic from the start until n records came.
func (e *env) records(topic string, n int) []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(append(e.client, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(e.t)
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("%s: %d records, want %d", topic, len(recs), n)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// committed is group's committed offset of topic's partition, -1 for none.
func (e *env) committed(group, topic string, partition int32) int64 {
	e.t.Helper()
	cl, err := kgo.NewClient(e.client...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{partition}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(e.t), cl)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				if t.Topic == topic && p.Partition == partition {
					return p.Offset
				}
			}
		}
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.Topic == topic && p.Partition == partition {
				return p.Offset
			}
		}
	}
	return -1
}

// waitCommitted waits until group committed want.
func (e *env) waitCommitted(group, topic string, partition int32, want int64) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.committed(group, topic, partition)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("group %s: committed offset of %s/%d is %d, want %d", group, topic, partition, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outcome sends m unsettled and returns nil for accepted, the rejection's
// error otherwise.
func outcome(ctx context.Context, snd *goamqp.Sender, m *goamqp.Message) error {
	r, err := snd.SendWithReceipt(ctx, m, nil)
	if err != nil {
		return err
	}
	st, err := r.Wait(ctx)
	if err != nil {
		return err
	}
	switch st := st.(type) {
	case *goamqp.StateAccepted:
		return nil
	case *goamqp.StateRejected:
		if st.Error == nil {
			return errors.New("rejected")
		}
		return st.Error
	}
	return fmt.Errorf("outcome %T", st)
}

// linkErr is the condition a link was refused or detached with.
func linkErr(err error) *goamqp.Error {
	var le *goamqp.LinkError
	if errors.As(err, &le) {
		return le.RemoteErr
	}
	var e *goamqp.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

func msg(body string, annotations goamqp.Annotations) *goamqp.Message {
	return &goamqp.Message{Data: [][]byte{[]byte(body)}, Annotations: annotations}
}

func ptr[T any](v T) *T { return &v }

// TestProduce: what a message produces, and the outcomes of failures.
func TestProduce(t *testing.T) {
	e := newEnv(t, 2, "t1", "shared.x", "ferry.messages", "hono.telemetry.acme")
	s := e.session("acme")
	ctx := testCtx(t)
	tests := []struct {
		name      string
		target    string // "" : the anonymous relay
		msg       *goamqp.Message
		cond      goamqp.ErrCond // "" : accepted
		desc      string         // in the rejection's description
		topic     string         // where the accepted record is
		partition int32
		key       string
	}{
		{"key and partition", "kafka/shared.x", msg("one", goamqp.Annotations{"x-opt-bridge.partition": int32(1), "x-opt-bridge.key": "k1"}), "", "", "shared.x", 1, "k1"},
		{"partition as long", "kafka/shared.x", msg("two", goamqp.Annotations{"x-opt-bridge.partition": int64(0)}), "", "", "shared.x", 0, ""},
		{"anonymous relay", "", &goamqp.Message{Value: "three", Properties: &goamqp.MessageProperties{To: ptr("kafka/hono.telemetry.acme")}}, "", "", "hono.telemetry.acme", -1, ""},
		{"missing topic", "kafka/exact", msg("x", nil), goamqp.ErrCond(CondErrorToKafka), "exact does not exist", "", 0, ""},
		{"partition past the topic's", "kafka/shared.x", msg("x", goamqp.Annotations{"x-opt-bridge.partition": int32(5)}), goamqp.ErrCond(CondErrorToKafka), "shared.x", "", 0, ""},
		{"partition not a number", "kafka/shared.x", msg("x", goamqp.Annotations{"x-opt-bridge.partition": "1"}), goamqp.ErrCondInvalidField, "x-opt-bridge.partition", "", 0, ""},
		{"key not a string", "kafka/shared.x", msg("x", goamqp.Annotations{"x-opt-bridge.key": int32(1)}), goamqp.ErrCondInvalidField, "x-opt-bridge.key", "", 0, ""},
		{"sequence body", "kafka/shared.x", &goamqp.Message{Sequence: [][]any{{"a"}}}, goamqp.ErrCondDecodeError, "amqp-sequence", "", 0, ""},
		{"map value", "kafka/shared.x", &goamqp.Message{Value: map[string]any{"a": "b"}}, goamqp.ErrCondDecodeError, "amqp-value", "", 0, ""},
		{"relay without to", "", msg("x", nil), goamqp.ErrCondInvalidField, "kafka/<topic>", "", 0, ""},
		{"relay to another tenant", "", &goamqp.Message{Value: "x", Properties: &goamqp.MessageProperties{To: ptr("kafka/hono.telemetry.other")}}, goamqp.ErrCondUnauthorizedAccess, "hono.telemetry.other", "", 0, ""},
		{"relay to Ferry's topic", "", &goamqp.Message{Value: "x", Properties: &goamqp.MessageProperties{To: ptr("kafka/ferry.messages")}}, goamqp.ErrCondUnauthorizedAccess, "Ferry's own", "", 0, ""},
	}
	senders := map[string]*goamqp.Sender{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snd := senders[tt.target]
			if snd == nil {
				var err error
				if snd, err = s.NewSender(ctx, tt.target, nil); err != nil {
					t.Fatal(err)
				}
				senders[tt.target] = snd
			}
			err := outcome(ctx, snd, tt.msg)
			if tt.cond != "" {
				ae := linkErr(err)
				if ae == nil || ae.Condition != tt.cond || !strings.Contains(ae.Description, tt.desc) {
					t.Fatalf("outcome %v, want rejected with %s naming %q", err, tt.cond, tt.desc)
				}
				return
			}
			if err != nil {
				t.Fatalf("outcome %v, want accepted", err)
			}
		})
	}
	// The accepted ones are in Kafka, in their partitions with their keys.
	got := map[string]*kgo.Record{}
	for _, r := range e.records("shared.x", 2) {
		got[string(r.Value)] = r
	}
	got["three"] = e.records("hono.telemetry.acme", 1)[0]
	for _, tt := range tests {
		if tt.topic == "" {
			continue
		}
		var body string
		if len(tt.msg.Data) > 0 {
			body = string(tt.msg.Data[0])
		} else {
			body = tt.msg.Value.(string)
		}
		r := got[body]
		if r == nil {
			t.Errorf("%s: no record %q in %s", tt.name, body, tt.topic)
			continue
		}
		if tt.partition >= 0 && r.Partition != tt.partition || string(r.Key) != tt.key {
			t.Errorf("%s: record in partition %d with key %q, want %d and %q", tt.name, r.Partition, r.Key, tt.partition, tt.key)
		}
	}
}

// TestProducePresettled: presettled messages are produced without an
// outcome; the application property becomes a header.
func TestProducePresettled(t *testing.T) {
	e := newEnv(t, 1, "t1")
	s := e.session("all")
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "kafka/t1", &goamqp.SenderOptions{SettlementMode: goamqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := msg(fmt.Sprint(i), nil)
		m.ApplicationProperties = map[string]any{"n": int32(i), "s": "v"}
		if err := snd.Send(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	recs := e.records("t1", 3)
	for i, r := range recs {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if string(r.Value) != fmt.Sprint(i) || h["n"] != fmt.Sprint(i) || h["s"] != "v" {
			t.Errorf("record %d: value %q headers %v", i, r.Value, h)
		}
	}
}

// TestRefusals: links the bridge refuses or detaches, with Strimzi's
// conditions.
func TestRefusals(t *testing.T) {
	e := newEnv(t, 2, "t1", "hono.event.acme", "hono.event.other", "shared.a", "exact", "ferry.messages")
	ctx := testCtx(t)
	filter := func(p, o any) []goamqp.LinkFilter {
		var fs []goamqp.LinkFilter
		if p != nil {
			fs = append(fs, goamqp.NewLinkFilter(string(FilterPartition), 0, p))
		}
		if o != nil {
			fs = append(fs, goamqp.NewLinkFilter(string(FilterOffset), 0, o))
		}
		return fs
	}
	tests := []struct {
		name    string
		user    string
		sender  bool
		addr    string
		filters []goamqp.LinkFilter
		props   map[string]any
		cond    goamqp.ErrCond // "": served
	}{
		{"slash in the topic", "all", true, "kafka/a/b", nil, nil, goamqp.ErrCondInvalidField},
		{"no topic", "all", true, "kafka/", nil, nil, goamqp.ErrCondInvalidField},
		{"bad character", "all", true, "kafka/a b", nil, nil, goamqp.ErrCondInvalidField},
		{"no group", "all", false, "kafka/t1", nil, nil, goamqp.ErrCond(CondNoGroupID)},
		{"empty group", "all", false, "kafka/t1/group.id/", nil, nil, goamqp.ErrCond(CondNoGroupID)},
		{"not group.id", "all", false, "kafka/t1/g", nil, nil, goamqp.ErrCond(CondNoGroupID)},
		{"offset without partition", "all", false, "kafka/t1/group.id/g", filter(nil, int64(3)), nil, goamqp.ErrCond(CondNoPartitionFilter)},
		{"negative partition", "all", false, "kafka/t1/group.id/g", filter(int32(-1), nil), nil, goamqp.ErrCond(CondWrongPartitionFilter)},
		{"partition not a number", "all", false, "kafka/t1/group.id/g", filter("0", nil), nil, goamqp.ErrCond(CondWrongPartitionFilter)},
		{"negative offset", "all", false, "kafka/t1/group.id/g", filter(int32(0), int64(-2)), nil, goamqp.ErrCond(CondWrongOffsetFilter)},
		{"unknown partition", "all", false, "kafka/t1/group.id/g", filter(int32(7), nil), nil, goamqp.ErrCond(CondPartitionNotExists)},
		{"missing topic", "all", false, "kafka/nope/group.id/g", nil, nil, goamqp.ErrCondNotFound},
		{"unknown converter", "all", true, "kafka/t1", nil, map[string]any{string(PropConverter): "xml"}, goamqp.ErrCondInvalidField},
		{"Ferry's topic", "all", true, "kafka/ferry.messages", nil, nil, goamqp.ErrCondUnauthorizedAccess},
		{"another tenant's topic", "acme", true, "kafka/hono.event.other", nil, nil, goamqp.ErrCondUnauthorizedAccess},
		{"a topic not listed", "acme", false, "kafka/t1/group.id/g", nil, nil, goamqp.ErrCondUnauthorizedAccess},
		{"its tenant's topic", "acme", false, "kafka/hono.event.acme/group.id/g", nil, nil, ""},
		{"a listed prefix", "acme", true, "kafka/shared.a", nil, nil, ""},
		{"a listed name", "acme", true, "kafka/exact", nil, nil, ""},
		{"a partition", "all", false, "kafka/t1/group.id/g", filter(int32(1), int64(0)), map[string]any{string(PropConverter): "json"}, ""},
	}
	sessions := map[string]*goamqp.Session{"all": e.session("all"), "acme": e.session("acme")}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sessions[tt.user]
			var err error
			if tt.sender {
				var snd *goamqp.Sender
				snd, err = s.NewSender(ctx, tt.addr, &goamqp.SenderOptions{Properties: tt.props})
				if err == nil {
					defer snd.Close(ctx)
				}
			} else {
				var r *goamqp.Receiver
				r, err = s.NewReceiver(ctx, tt.addr, &goamqp.ReceiverOptions{Filters: tt.filters, Properties: tt.props})
				if err == nil {
					defer r.Close(ctx)
					// What only Kafka can tell ends the link after its
					// attach; a served link stays quiet (empty topic).
					rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
					_, err = r.Receive(rctx, nil)
					cancel()
					if errors.Is(err, context.DeadlineExceeded) {
						err = nil
					}
				}
			}
			if tt.cond == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if ae := linkErr(err); ae == nil || ae.Condition != tt.cond {
				t.Fatalf("got %v, want %s", err, tt.cond)
			}
		})
	}
}

// receiver attaches a consumer link.
func receiver(t *testing.T, s *goamqp.Session, addr string, opts *goamqp.ReceiverOptions) *goamqp.Receiver {
	t.Helper()
	r, err := s.NewReceiver(testCtx(t), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// offsetOf is a consumed message's x-opt-bridge.offset.
func offsetOf(t *testing.T, m *goamqp.Message) int64 {
	t.Helper()
	o, ok := m.Annotations[string(AnnotationOffset)].(int64)
	if !ok {
		t.Fatalf("message without %s: %v", AnnotationOffset, m.Annotations)
	}
	return o
}

func records(topic string, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}
	}
	return recs
}

// TestConsumeGroup: a group member gets the records with their
// annotations; commits stop at the first offset not settled, released
// messages come again, and the next member resumes after the last
// committed offset.
func TestConsumeGroup(t *testing.T) {
	e := newEnv(t, 1, "t1")
	e.produce(records("t1", 10)...)
	s := e.session("all")
	ctx := testCtx(t)
	r := receiver(t, s, "kafka/t1/group.id/g1", &goamqp.ReceiverOptions{Credit: 10})
	var ms []*goamqp.Message
	for range 10 {
		m, err := r.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	for i, m := range ms {
		a := m.Annotations
		if offsetOf(t, m) != int64(i) || a[string(AnnotationTopic)] != "t1" || a[string(AnnotationPartition)] != int32(0) ||
			a[string(AnnotationKey)] != fmt.Sprintf("k%d", i) || string(m.GetData()) != fmt.Sprintf("v%d", i) {
			t.Fatalf("message %d: %v %q", i, a, m.GetData())
		}
	}
	settle := func(f func(context.Context, *goamqp.Message) error, offsets ...int) {
		t.Helper()
		for _, o := range offsets {
			if err := f(ctx, ms[o]); err != nil {
				t.Fatal(err)
			}
		}
	}
	settle(r.AcceptMessage, 0, 1, 2, 4, 5)
	e.waitCommitted("g1", "t1", 0, 3)
	settle(func(ctx context.Context, m *goamqp.Message) error { return r.RejectMessage(ctx, m, nil) }, 3)
	e.waitCommitted("g1", "t1", 0, 6)
	settle(r.ReleaseMessage, 6)
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if offsetOf(t, m) != 6 {
		t.Fatalf("after a release got offset %d, want 6 again", offsetOf(t, m))
	}
	settle(r.AcceptMessage, 8)
	if err := r.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	e.waitCommitted("g1", "t1", 0, 7)
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// 7 and 9 were never settled: the next member starts at 7.
	r2 := receiver(t, s, "kafka/t1/group.id/g1", &goamqp.ReceiverOptions{Credit: 10})
	m, err = r2.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if offsetOf(t, m) != 7 {
		t.Fatalf("the next member starts at offset %d, want 7", offsetOf(t, m))
	}
}

// TestConsumePresettled: a link whose messages are sent settled commits
// them once sent.
func TestConsumePresettled(t *testing.T) {
	e := newEnv(t, 1, "t1")
	e.produce(records("t1", 5)...)
	s := e.session("all")
	ctx := testCtx(t)
	r := receiver(t, s, "kafka/t1/group.id/g2", &goamqp.ReceiverOptions{Credit: 10, RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr()})
	for i := range 5 {
		m, err := r.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if offsetOf(t, m) != int64(i) {
			t.Fatalf("got offset %d, want %d", offsetOf(t, m), i)
		}
	}
	e.waitCommitted("g2", "t1", 0, 5)
}

// TestConsumeCredit: nothing is sent past the link's credit; more credit
// brings the rest.
func TestConsumeCredit(t *testing.T) {
	e := newEnv(t, 1, "t1")
	e.produce(records("t1", 10)...)
	s := e.session("all")
	ctx := testCtx(t)
	r := receiver(t, s, "kafka/t1/group.id/g3", &goamqp.ReceiverOptions{Credit: -1})
	if err := r.IssueCredit(2); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		m, err := r.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if offsetOf(t, m) != int64(i) {
			t.Fatalf("got offset %d, want %d", offsetOf(t, m), i)
		}
		if err := r.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// A negative check: give the bridge time to overrun.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if m, err := r.Receive(short, nil); err == nil {
		t.Fatalf("offset %d sent without credit", offsetOf(t, m))
	}
	if err := r.IssueCredit(8); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 10; i++ {
		m, err := r.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if offsetOf(t, m) != int64(i) {
			t.Fatalf("got offset %d, want %d", offsetOf(t, m), i)
		}
	}
}

// TestConsumePartition: the partition filter reads one partition from
// the offset filter, or from the group's committed offset, which its
// settlements move.
func TestConsumePartition(t *testing.T) {
	e := newEnv(t, 2, "t2")
	recs := records("t2", 6)
	for _, r := range recs {
		r.Partition = 1
	}
	cl, err := kgo.NewClient(append(e.client, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	s := e.session("all")
	ctx := testCtx(t)
	part := goamqp.NewLinkFilter(string(FilterPartition), 0, int32(1))
	r := receiver(t, s, "kafka/t2/group.id/g4", &goamqp.ReceiverOptions{Credit: 10,
		Filters: []goamqp.LinkFilter{part, goamqp.NewLinkFilter(string(FilterOffset), 0, int64(2))}})
	for i := 2; i < 4; i++ {
		m, err := r.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if offsetOf(t, m) != int64(i) || m.Annotations[string(AnnotationPartition)] != int32(1) {
			t.Fatalf("got %v, want offset %d of partition 1", m.Annotations, i)
		}
		if err := r.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	e.waitCommitted("g4", "t2", 1, 4)
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r = receiver(t, s, "kafka/t2/group.id/g4", &goamqp.ReceiverOptions{Credit: 10, Filters: []goamqp.LinkFilter{part}})
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if offsetOf(t, m) != 4 {
		t.Fatalf("without an offset filter the link starts at %d, want the committed 4", offsetOf(t, m))
	}
}

// TestJSONConverter: a message goes through Kafka whole as a JSON
// envelope; a record that is none arrives as with the body converter.
func TestJSONConverter(t *testing.T) {
	e := newEnv(t, 1, "t1")
	s := e.session("all")
	ctx := testCtx(t)
	props := map[string]any{string(PropConverter): "json"}
	snd, err := s.NewSender(ctx, "kafka/t1", &goamqp.SenderOptions{Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	in := &goamqp.Message{
		Properties:            &goamqp.MessageProperties{MessageID: "m-1", Subject: ptr("temp"), ContentType: ptr("text/plain")},
		ApplicationProperties: map[string]any{"device_id": "d1", "n": int64(3)},
		Annotations:           goamqp.Annotations{"x-opt-bridge.key": "d1"},
		Value:                 "21.5",
	}
	if err := outcome(ctx, snd, in); err != nil {
		t.Fatal(err)
	}
	rec := e.records("t1", 1)[0]
	want := `{"properties":{"messageId":"m-1","subject":"temp","contentType":"text/plain"},"applicationProperties":{"device_id":"d1","n":3},"messageAnnotations":{"x-opt-bridge.key":"d1"},"body":{"type":"value","section":"21.5"}}`
	if string(rec.Value) != want || string(rec.Key) != "d1" {
		t.Fatalf("record %q key %q, want %s", rec.Value, rec.Key, want)
	}
	e.produce(&kgo.Record{Topic: "t1", Value: []byte("plain")})
	r := receiver(t, s, "kafka/t1/group.id/g5", &goamqp.ReceiverOptions{Credit: 10, Properties: props})
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Value != "21.5" || m.Properties == nil || m.Properties.MessageID != "m-1" || *m.Properties.Subject != "temp" ||
		m.ApplicationProperties["n"] != int64(3) || m.Annotations[string(AnnotationOffset)] != int64(0) {
		t.Fatalf("got %+v %+v", m, m.Properties)
	}
	m, err = r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.GetData()) != "plain" {
		t.Fatalf("a plain record arrived as %+v", m)
	}
}

// TestTracker: the commit point stops at the first offset not done and
// follows the offsets seen, gaps and all.
func TestTracker(t *testing.T) {
	tests := []struct {
		name  string
		sent  []int64
		done  []int64
		point int64 // -1: nothing to commit
	}{
		{"nothing sent", nil, nil, -1},
		{"none done", []int64{0, 1}, nil, 0},
		{"in order", []int64{0, 1, 2}, []int64{0, 1, 2}, 3},
		{"a gap held", []int64{0, 1, 2, 3}, []int64{0, 2, 3}, 1},
		{"gap closed", []int64{0, 1, 2, 3}, []int64{3, 2, 0, 1}, 4},
		{"offsets with holes", []int64{5, 7, 10}, []int64{5, 10}, 7},
		{"holes all done", []int64{5, 7, 10}, []int64{7, 5, 10}, 11},
		{"done twice", []int64{0, 1}, []int64{0, 0}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr tracker
			for _, o := range tt.sent {
				tr.sent(o)
			}
			for _, o := range tt.done {
				tr.done(o)
			}
			p, ok := tr.point()
			if !ok {
				p = -1
			}
			if p != tt.point {
				t.Fatalf("point %d, want %d", p, tt.point)
			}
		})
	}
}

// linkCount is how many links the bridge serves.
func (b *Bridge) linkCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.links
}

// TestLinkLimitsAndEnd: links past the bridge's bounds are refused; a
// connection that closes ends its links, and a consumer's settled
// offsets are committed on the way out.
func TestLinkLimitsAndEnd(t *testing.T) {
	// Registered first, so it runs after the cleanups of the listener,
	// the bridge and the cluster: every goroutine has exited.
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	e := newEnvWith(t, func(o *Options) { o.MaxLinks, o.MaxConsumers = 2, 1 }, 1, "t1")
	e.produce(records("t1", 3)...)
	ctx := testCtx(t)
	c, err := goamqp.Dial(ctx, "amqp://"+e.addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("all", "all")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := receiver(t, s, "kafka/t1/group.id/g6", &goamqp.ReceiverOptions{Credit: 10, RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr()})
	if _, err := s.NewReceiver(ctx, "kafka/t1/group.id/g7", nil); linkErr(err) == nil || linkErr(err).Condition != goamqp.ErrCondResourceLimitExceeded {
		t.Fatalf("a second consumer: %v, want amqp:resource-limit-exceeded", err)
	}
	if _, err := s.NewSender(ctx, "kafka/t1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewSender(ctx, "kafka/t1", nil); linkErr(err) == nil || linkErr(err).Condition != goamqp.ErrCondResourceLimitExceeded {
		t.Fatalf("a third link: %v, want amqp:resource-limit-exceeded", err)
	}
	for range 3 {
		if _, err := r.Receive(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.bridge.linkCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d links still served after their connection closed", e.bridge.linkCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.committed("g6", "t1", 0); got != 3 {
		t.Fatalf("committed %d after the connection closed, want 3", got)
	}
}

// TestConsumeGroupShared: two links of one group share the topic's
// partitions; between them they get every record, after the group
// rebalanced from one member to two.
func TestConsumeGroupShared(t *testing.T) {
	e := newEnv(t, 2, "t3")
	e.produce(records("t3", 10)...)
	s := e.session("all")
	ctx := testCtx(t)
	type at struct {
		link      int
		partition any
		offset    any
	}
	got := make(chan at, 100)
	recv := func(link int, r *goamqp.Receiver) {
		for {
			m, err := r.Receive(ctx, nil)
			if err != nil {
				return
			}
			_ = r.AcceptMessage(ctx, m)
			got <- at{link, m.Annotations[string(AnnotationPartition)], m.Annotations[string(AnnotationOffset)]}
		}
	}
	seen := map[[2]any]bool{}
	byLink := map[int]int{}
	waitSeen := func(n int) {
		t.Helper()
		for len(seen) < n {
			select {
			case a := <-got:
				seen[[2]any{a.partition, a.offset}] = true
				byLink[a.link]++
			case <-ctx.Done():
				t.Fatalf("%d records seen, want %d", len(seen), n)
			}
		}
	}
	go recv(1, receiver(t, s, "kafka/t3/group.id/shared", &goamqp.ReceiverOptions{Credit: 5}))
	waitSeen(10)
	go recv(2, receiver(t, s, "kafka/t3/group.id/shared", &goamqp.ReceiverOptions{Credit: 5}))
	// Until the group gave the second link a partition, the first gets
	// the new records.
	for i := 10; byLink[2] == 0; i++ {
		e.produce(&kgo.Record{Topic: "t3", Value: fmt.Appendf(nil, "v%d", i)})
		waitSeen(i + 1)
	}
}
