package client

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// publishLost publishes n QoS 1 and n QoS 2 messages and a last QoS 1
// one, the fence, through a muted proxy (the server gets them, the client
// no acknowledgement), and waits until the subscriber has the fence: the
// server has then read everything before it. (Mosquitto forwards a QoS 2
// message only once it got the PUBREL.)
func publishLost(t *testing.T, c *Client, px *proxy, got *collector, n int) []*Token {
	t.Helper()
	px.mute.Store(true)
	var toks []*Token
	for i := range 2 * n {
		qos := byte(1 + i/n)
		tok, err := c.PublishAsync(testContext(t), &Message{Topic: "rc/m", Payload: fmt.Appendf(nil, "q%d-%d", qos, i), QoS: qos})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	tok, err := c.PublishAsync(testContext(t), &Message{Topic: "rc/m", Payload: []byte("fence"), QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	toks = append(toks, tok)
	waitFor(t, "the fence", func() bool { return got.count("fence") > 0 })
	for _, tok := range toks {
		select {
		case <-tok.Done():
			t.Fatal("a message was acknowledged through the muted proxy")
		default:
		}
	}
	return toks
}

// checkOnce sends a marker behind the resent messages and checks that the
// subscriber got each QoS 1 message at least once and each QoS 2 one
// exactly once (at least once unless qos2Once).
func checkOnce(t *testing.T, c *Client, got *collector, n int, qos2Once bool) {
	t.Helper()
	if err := c.Publish(testContext(t), &Message{Topic: "rc/m", Payload: []byte("end"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the marker", func() bool { return got.count("end") == 1 })
	for i := range 2 * n {
		qos := 1 + i/n
		p := fmt.Sprintf("q%d-%d", qos, i)
		switch k := got.count(p); {
		case k == 0:
			t.Errorf("%s lost", p)
		case qos == 2 && k != 1 && qos2Once:
			t.Errorf("%s delivered %d times", p, k)
		}
	}
}

// brokers are the servers the session tests run against.
var brokers = []struct {
	name  string
	start func(t *testing.T) string
	// qos2Once: the broker keeps the inbound QoS 2 packet identifiers
	// awaiting PUBREL across connections, so a resent PUBLISH is not
	// forwarded again.
	qos2Once bool
}{
	{"ferry", func(t *testing.T) string { return startFerry(t, "").addr }, true},
	{"mosquitto", func(t *testing.T) string { return startMosquitto(t, "") }, true},
}

func TestReconnectResends(t *testing.T) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) { testReconnectResends(t, b.start(t), b.qos2Once) })
	}
}

func testReconnectResends(t *testing.T, addr string, qos2Once bool) {
	var got collector
	sub := connect(t, Options{Server: "tcp://" + addr, ClientID: "rc-sub", CleanStart: true, OnMessage: got.handle})
	subscribe(t, sub, "rc/#", 2)

	px := startProxy(t, addr)
	sessions := make(chan bool, 4)
	c := connect(t, Options{
		Server: px.addr(), ClientID: "rc-pub", CleanStart: true, SessionExpiry: time.Minute,
		Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnConnect: func(_ *Client, present bool) { sessions <- present },
	})
	if <-sessions {
		t.Fatal("session present on a clean start")
	}
	const n = 5
	toks := publishLost(t, c, px, &got, n)
	px.drop()
	px.mute.Store(false)
	select {
	case present := <-sessions:
		if !present {
			t.Fatal("session not resumed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnection")
	}
	ctx := testContext(t)
	for _, tok := range toks {
		if err := tok.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	resent := c.resent
	c.mu.Unlock()
	if resent != 2*n+1 {
		t.Errorf("resent %d messages, want %d", resent, 2*n+1)
	}
	checkOnce(t, c, &got, n, qos2Once)
}

// TestFileStoreRestart: a client that ends with messages unacknowledged,
// and a new one started with the same FileStore and client identifier,
// which delivers them.
func TestFileStoreRestart(t *testing.T) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) { testFileStoreRestart(t, b.start(t), b.qos2Once) })
	}
}

func testFileStoreRestart(t *testing.T, addr string, qos2Once bool) {
	var got collector
	sub := connect(t, Options{Server: "tcp://" + addr, ClientID: "fs-sub", CleanStart: true, OnMessage: got.handle})
	subscribe(t, sub, "rc/#", 2)

	dir := t.TempDir()
	store, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, addr)
	opts := Options{Server: px.addr(), ClientID: "fs-pub", CleanStart: true, SessionExpiry: time.Minute, Store: store}
	first := connect(t, opts)
	const n = 3
	publishLost(t, first, px, &got, n)
	first.Close()

	store, err = OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := store.Load()
	if err != nil || len(out) != 2*n+1 {
		t.Fatalf("store holds %d messages (%v), want %d", len(out), err, 2*n+1)
	}
	opts.Server, opts.CleanStart, opts.Store = "tcp://"+addr, false, store
	second := connect(t, opts)
	waitFor(t, "the store to empty", func() bool {
		out, _, err := store.Load()
		return err == nil && len(out) == 0
	})
	checkOnce(t, second, &got, n, qos2Once)
}

// TestRequest: a v5 request answered by another client.
func TestRequest(t *testing.T) {
	f := startFerry(t, "")
	ctx := testContext(t)
	var responder *Client
	responder = connect(t, Options{Server: "tcp://" + f.addr, ClientID: "svc", CleanStart: true, OnMessage: func(m *Message) {
		go responder.Publish(ctx, &Message{
			Topic: m.Properties.ResponseTopic, Payload: append([]byte("re: "), m.Payload...), QoS: 1,
			Properties: propsWithCorrelation(m.Properties.CorrelationData),
		})
	}})
	subscribe(t, responder, "svc/echo", 1)
	c := connect(t, Options{Server: "tcp://" + f.addr, ClientID: "asker", CleanStart: true})
	for _, q := range []string{"one", "two"} {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := c.Request(rctx, "svc/echo", []byte(q))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload) != "re: "+q {
			t.Errorf("response %q, want %q", m.Payload, "re: "+q)
		}
	}
}
