package kafkaapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

// cluster starts a kfake cluster with topics and returns the client
// options to reach it.
func cluster(t testing.TB, topics ...string) []kgo.Opt {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
}

func start(t testing.TB, opts Options) *Messaging {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// consume returns the first n records of topic.
func consume(t *testing.T, client []kgo.Opt, topic string, n int) []*kgo.Record {
	t.Helper()
	return consumeUntil(t, client, topic, func(recs []*kgo.Record) bool { return len(recs) >= n })
}

// consumeUntil reads topic from its start until enough says so.
func consumeUntil(t *testing.T, client []kgo.Opt, topic string, enough func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(client, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for !enough(recs) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: not the records wanted among %d", topic, len(recs))
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func produce(t *testing.T, m *Messaging, tenant string, hm *hub.Message) error {
	t.Helper()
	errc := make(chan error, 1)
	m.Produce(tenant, hm, func(err error) { errc <- err })
	select {
	case err := <-errc:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("no acknowledgement from Kafka")
	}
	return nil
}

// TestProduce: telemetry and events go to the tenant's topics with the
// device id as key and Hono's headers; a missing topic fails naming it.
func TestProduce(t *testing.T) {
	topics := Topics{Prefix: "p."}
	client := cluster(t, topics.Telemetry("acme"), topics.Event("acme"))
	m := start(t, Options{Client: client, Topics: topics})
	created := time.UnixMilli(1_700_000_000_123)
	hm := &hub.Message{Topic: hono.HubTopic(hono.Telemetry, "4711"), Payload: []byte(`{"temp":5}`), QoS: 1,
		ContentType: "application/json", Created: created,
		Properties: []hub.Property{{Key: hono.PropDeviceID, Value: "4711"}, {Key: hono.PropQoS, Value: int64(1)},
			{Key: hono.PropOrigAdapter, Value: hono.AdapterMQTT}, {Key: "x-flag", Value: true}},
		UserProperties: []hub.UserProperty{{Key: "bag", Value: "v"}}}
	if err := produce(t, m, "acme", hm); err != nil {
		t.Fatal(err)
	}
	ev := &hub.Message{Topic: hono.HubTopic(hono.Event, "4711"), Payload: []byte("e"), QoS: 1, Created: created,
		Expiry: created.Add(90 * time.Second)}
	if err := produce(t, m, "acme", ev); err != nil {
		t.Fatal(err)
	}
	r := consume(t, client, "p.hono.telemetry.acme", 1)[0]
	want := map[string]string{"content-type": "application/json", "creation-time": "1700000000123", "device_id": "4711",
		"qos": "1", "orig_adapter": "hono-mqtt", "x-flag": "true", "bag": "v"}
	got := headers(r)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("telemetry header %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if string(r.Key) != "4711" || string(r.Value) != `{"temp":5}` {
		t.Errorf("telemetry key %q value %q", r.Key, r.Value)
	}
	e := consume(t, client, "p.hono.event.acme", 1)[0]
	if h := headers(e); h["ttl"] != "90000" || h["content-type"] != hono.ContentTypeOctetStream {
		t.Errorf("event headers %v, want ttl 90000 and octet-stream", h)
	}

	err := produce(t, m, "nobody", hm)
	if err == nil || !strings.Contains(err.Error(), "p.hono.telemetry.nobody") {
		t.Fatalf("a missing topic: %v, want an error naming p.hono.telemetry.nobody", err)
	}
	if err := produce(t, m, "acme", &hub.Message{Topic: "plain/topic"}); err == nil {
		t.Fatal("a message of no Hono topic was produced")
	}
}

// device accepts commands and remembers them.
type device chan *command.Command

func (d device) Deliver(cmd *command.Command, done func(command.Outcome)) {
	d <- cmd
	done(command.Accepted)
}

// TestCommands: a command produced to hono.command.<tenant> reaches the
// device; its response, the router's 408 and the delivery failure of a
// command for a device that is not connected go to
// hono.command_response.<tenant> with Hono's headers.
func TestCommands(t *testing.T) {
	var topics Topics
	client := cluster(t, topics.All("acme")...)
	router := command.NewRouter(command.Options{})
	t.Cleanup(router.Close)
	dev := make(device, 100)
	t.Cleanup(router.Subscribe("acme", "4711", "", dev))
	start(t, Options{Client: client, Topics: topics, Commands: router, ResponseTimeout: 300 * time.Millisecond})

	app, err := kgo.NewClient(append(client, kgo.DefaultProduceTopic(topics.Command("acme")))...)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	send := func(device, corr string, extra ...kgo.RecordHeader) {
		t.Helper()
		hs := append([]kgo.RecordHeader{{Key: "device_id", Value: []byte(device)}, {Key: "subject", Value: []byte("set")},
			{Key: "correlation-id", Value: []byte(corr)}, {Key: "response-required", Value: []byte("true")}}, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The consumer starts at the end: produce until it took one.
		if err := app.ProduceSync(ctx, &kgo.Record{Key: []byte(device), Value: []byte("on"), Headers: hs}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var cmd *command.Command
	deadline := time.After(20 * time.Second)
	for i := 0; cmd == nil; i++ {
		send("4711", fmt.Sprintf("c-1-%d", i))
		select {
		case cmd = <-dev:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("the device got no command")
		}
	}
	if cmd.Name != "set" || string(cmd.Payload) != "on" || cmd.Messaging != hono.MessagingKafka || !strings.HasPrefix(cmd.CorrelationID, "c-1-") {
		t.Fatalf("command %+v", cmd)
	}
	// The device answers through its adapter, with the request id's
	// messaging type.
	if err := router.Respond(&command.Response{Messaging: hono.MessagingKafka, Tenant: "acme", Device: "4711",
		CorrelationID: cmd.CorrelationID, ReplyID: cmd.ReplyID, Status: 200, Payload: []byte("done")}); err != nil {
		t.Fatal(err)
	}
	send("nobody", "c-2", kgo.RecordHeader{Key: "delivery-failure-notification-metadata[app]", Value: []byte("x")})

	byCorr := map[string]*kgo.Record{}
	consumeUntil(t, client, topics.CommandResponse("acme"), func(recs []*kgo.Record) bool {
		for _, r := range recs {
			byCorr[headers(r)["correlation-id"]] = r
		}
		return byCorr[cmd.CorrelationID] != nil && byCorr["c-2"] != nil
	})
	r := byCorr[cmd.CorrelationID]
	if r == nil {
		t.Fatalf("no response for %s among %v", cmd.CorrelationID, byCorr)
	}
	if h := headers(r); h["status"] != "200" || h["device_id"] != "4711" || h["tenant_id"] != "acme" || string(r.Value) != "done" {
		t.Errorf("response %q with %v", r.Value, h)
	}
	if f := byCorr["c-2"]; f == nil {
		t.Error("no delivery failure for a device that is not connected")
	} else if h := headers(f); h["status"] != "503" || h["content-type"] != ContentTypeDeliveryFailure || h["delivery-failure-notification-metadata[app]"] != "x" {
		t.Errorf("delivery failure %q with %v", f.Value, h)
	}
}

// TestKafkaDown: while the brokers refuse produce requests, QoS 1 messages
// are not acknowledged (their devices are held back: franz-go's idempotent
// producer does not give up on a request that may have been written); once
// the brokers take them again, they and the later ones complete, and every
// acknowledged message is in the topic.
func TestKafkaDown(t *testing.T) {
	topics := Topics{}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.Telemetry("acme")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var down atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if down.Load() {
			return nil, errors.New("broker down"), true // closes the connection
		}
		return nil, nil, false
	})
	client := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	m := start(t, Options{Client: client, Topics: topics, DeliveryTimeout: time.Second})
	msg := func(payload string) *hub.Message {
		return &hub.Message{Topic: hono.HubTopic(hono.Telemetry, "d"), Payload: []byte(payload), QoS: 1, Created: time.Now()}
	}
	down.Store(true)
	held := map[string]chan error{}
	for _, p := range []string{"held-1", "held-2"} {
		done := make(chan error, 1)
		m.Produce("acme", msg(p), func(err error) { done <- err })
		held[p] = done
	}
	select {
	case err := <-held["held-1"]:
		if err == nil {
			t.Fatal("acknowledged while the broker was down")
		}
		delete(held, "held-1") // refused: the device was told
	case <-time.After(2 * time.Second): // held back: what a device sees as backpressure
	}
	down.Store(false)
	acked := map[string]bool{}
	for p, done := range held {
		select {
		case err := <-done:
			if err == nil {
				acked[p] = true
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s still waiting after the broker came back", p)
		}
	}
	for _, p := range []string{"kept-1", "kept-2"} {
		if err := produce(t, m, "acme", msg(p)); err != nil {
			t.Fatalf("%s after the broker came back: %v", p, err)
		}
		acked[p] = true
	}
	consumeUntil(t, client, topics.Telemetry("acme"), func(recs []*kgo.Record) bool {
		for _, r := range recs {
			delete(acked, string(r.Value))
		}
		return len(acked) == 0
	})
}
