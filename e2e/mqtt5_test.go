package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// pahoGo connects a paho.golang MQTT 5 client to n; received gets every
// PUBLISH it receives.
func pahoGo(t *testing.T, addr, id string) (*paho.Client, chan *paho.Publish) {
	t.Helper()
	cl, _, _, received := pahoConnect(t, addr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	t.Cleanup(func() {
		cl.Disconnect(&paho.Disconnect{})
		<-cl.Done()
	})
	return cl, received
}

// pahoConnect dials addr and connects a paho.golang client with cp; the
// channel gets every PUBLISH the client receives. The caller ends it.
func pahoConnect(t *testing.T, addr string, cp *paho.Connect) (*paho.Client, *paho.Connack, net.Conn, chan *paho.Publish) {
	t.Helper()
	received := make(chan *paho.Publish, 1024)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl := paho.NewClient(paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(r paho.PublishReceived) (bool, error) { received <- r.Packet; return true, nil },
		},
	})
	ack, err := cl.Connect(ctx5(t), cp)
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %v", cp.ClientID, err, ack)
	}
	return cl, ack, nc, received
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func subscribe(t *testing.T, cl *paho.Client, id int, opts ...paho.SubscribeOptions) {
	t.Helper()
	s := &paho.Subscribe{Subscriptions: opts}
	if id != 0 {
		s.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &id}
	}
	ack, err := cl.Subscribe(ctx5(t), s)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	for i, o := range opts {
		if ack.Reasons[i] != o.QoS {
			t.Fatalf("SUBACK for %s = %#x, want granted QoS %d", o.Topic, ack.Reasons[i], o.QoS)
		}
	}
}

func publish(t *testing.T, cl *paho.Client, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	resp, err := cl.Publish(ctx5(t), p)
	if err != nil {
		t.Fatalf("publish to %s: %v", p.Topic, err)
	}
	return resp
}

func receive(t *testing.T, ch chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no message received")
		return nil
	}
}

// nothing asserts that ch stays empty a little while: used after a
// message that must not arrive was published and a later one that must
// arrive was received, so it only guards against late duplicates.
func nothing(t *testing.T, ch chan *paho.Publish) {
	t.Helper()
	select {
	case p := <-ch:
		t.Fatalf("unexpected message on %s: %q", p.Topic, p.Payload)
	default:
	}
}

func TestMQTT5Properties(t *testing.T) {
	n := startFerry(t)
	addr := n.MQTTAddr().String()
	sub, got := pahoGo(t, addr, "props-sub")
	pub, _ := pahoGo(t, addr, "props-pub")
	subscribe(t, sub, 42, paho.SubscribeOptions{Topic: "req/#", QoS: 1})

	format := byte(1)
	expiry := uint32(60)
	want := &paho.Publish{Topic: "req/1", QoS: 1, Payload: []byte("héllo"), Properties: &paho.PublishProperties{
		ContentType:     "text/plain",
		ResponseTopic:   "resp/1",
		CorrelationData: []byte{1, 2, 3},
		PayloadFormat:   &format,
		MessageExpiry:   &expiry,
		User:            paho.UserProperties{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "a", Value: "3"}},
	}}
	publish(t, pub, want)
	p := receive(t, got)
	pp := p.Properties
	switch {
	case string(p.Payload) != "héllo" || p.QoS != 1:
		t.Errorf("payload %q QoS %d", p.Payload, p.QoS)
	case pp.ContentType != "text/plain" || pp.ResponseTopic != "resp/1" || string(pp.CorrelationData) != "\x01\x02\x03":
		t.Errorf("request/response properties lost: %+v", pp)
	case pp.PayloadFormat == nil || *pp.PayloadFormat != 1:
		t.Errorf("payload format indicator lost")
	case pp.MessageExpiry == nil || *pp.MessageExpiry == 0 || *pp.MessageExpiry > 60:
		t.Errorf("message expiry = %v, want 1..60", pp.MessageExpiry)
	case !slices.Equal(pp.User, want.Properties.User):
		t.Errorf("user properties = %v, want %v in order", pp.User, want.Properties.User)
	case pp.SubscriptionIdentifier == nil || *pp.SubscriptionIdentifier != 42:
		t.Errorf("subscription identifier = %v, want 42", pp.SubscriptionIdentifier)
	}

	// Payload format 1 with invalid UTF-8 is refused with 0x99.
	// (paho reports a failure code as an error and still returns the PUBACK.)
	bad, _ := pub.Publish(ctx5(t), &paho.Publish{Topic: "req/2", QoS: 1, Payload: []byte{0xff, 0xfe},
		Properties: &paho.PublishProperties{PayloadFormat: &format}})
	if bad == nil || bad.ReasonCode != 0x99 {
		t.Errorf("PUBACK for invalid UTF-8 payload = %+v, want reason 0x99", bad)
	}
}

func TestMQTT5SubscriptionOptions(t *testing.T) {
	n := startFerry(t)
	addr := n.MQTTAddr().String()
	a, gotA := pahoGo(t, addr, "opt-a")
	b, gotB := pahoGo(t, addr, "opt-b")

	// No local: a does not get its own messages.
	subscribe(t, a, 0, paho.SubscribeOptions{Topic: "nl", QoS: 1, NoLocal: true})
	publish(t, a, &paho.Publish{Topic: "nl", QoS: 1, Payload: []byte("own")})
	publish(t, b, &paho.Publish{Topic: "nl", QoS: 1, Payload: []byte("other")})
	if p := receive(t, gotA); string(p.Payload) != "other" {
		t.Errorf("no-local subscriber got %q first, want %q", p.Payload, "other")
	}
	nothing(t, gotA)

	// Retain as published keeps the flag on live retained messages.
	subscribe(t, a, 0, paho.SubscribeOptions{Topic: "rap/keep", QoS: 1, RetainAsPublished: true},
		paho.SubscribeOptions{Topic: "rap/clear", QoS: 1})
	publish(t, b, &paho.Publish{Topic: "rap/keep", QoS: 1, Retain: true, Payload: []byte("k")})
	publish(t, b, &paho.Publish{Topic: "rap/clear", QoS: 1, Retain: true, Payload: []byte("c")})
	if p := receive(t, gotA); p.Topic != "rap/keep" || !p.Retain {
		t.Errorf("retain-as-published: %s retain=%v", p.Topic, p.Retain)
	}
	if p := receive(t, gotA); p.Topic != "rap/clear" || p.Retain {
		t.Errorf("without retain-as-published: %s retain=%v", p.Topic, p.Retain)
	}

	// Retain handling 2: no retained message on subscribe; 0: sent.
	subscribe(t, b, 0, paho.SubscribeOptions{Topic: "rap/keep", QoS: 1, RetainHandling: 2})
	subscribe(t, b, 0, paho.SubscribeOptions{Topic: "rap/clear", QoS: 1, RetainHandling: 0})
	if p := receive(t, gotB); p.Topic != "rap/clear" || !p.Retain {
		t.Errorf("retain handling: got %s retain=%v, want only rap/clear retained", p.Topic, p.Retain)
	}
	nothing(t, gotB)

	// Overlapping subscriptions: one copy at the highest granted QoS.
	subscribe(t, a, 0, paho.SubscribeOptions{Topic: "ov/#", QoS: 0}, paho.SubscribeOptions{Topic: "ov/x", QoS: 1})
	publish(t, b, &paho.Publish{Topic: "ov/x", QoS: 1, Payload: []byte("once")})
	publish(t, b, &paho.Publish{Topic: "ov/y", QoS: 1, Payload: []byte("marker")})
	if p := receive(t, gotA); p.Topic != "ov/x" || p.QoS != 1 {
		t.Errorf("overlap: got %s QoS %d, want ov/x QoS 1", p.Topic, p.QoS)
	}
	if p := receive(t, gotA); p.Topic != "ov/y" {
		t.Errorf("overlap: got a second copy of %s", p.Topic)
	}
}

func TestMQTT5SharedSubscription(t *testing.T) {
	n := startFerry(t)
	addr := n.MQTTAddr().String()
	m1, got1 := pahoGo(t, addr, "share-1")
	m2, got2 := pahoGo(t, addr, "share-2")
	pub, _ := pahoGo(t, addr, "share-pub")
	subscribe(t, m1, 0, paho.SubscribeOptions{Topic: "$share/g/work/#", QoS: 1})
	subscribe(t, m2, 0, paho.SubscribeOptions{Topic: "$share/g/work/#", QoS: 1})
	const total = 20
	for i := range total {
		publish(t, pub, &paho.Publish{Topic: "work/item", QoS: 1, Payload: fmt.Appendf(nil, "%d", i)})
	}
	seen := map[string]bool{}
	c1, c2 := 0, 0
	for c1+c2 < total {
		select {
		case p := <-got1:
			c1++
			seen[string(p.Payload)] = true
		case p := <-got2:
			c2++
			seen[string(p.Payload)] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("group received %d of %d", c1+c2, total)
		}
	}
	if len(seen) != total || c1 == 0 || c2 == 0 {
		t.Errorf("members got %d and %d messages, %d distinct; want every message once, shared by both", c1, c2, len(seen))
	}
}

// TestPerPublisherOrdering checks that QoS 1 messages of one publisher on
// one topic arrive in publish order, across the inflight window.
func TestPerPublisherOrdering(t *testing.T) {
	n := startFerry(t)
	addr := n.MQTTAddr().String()
	sub, got := pahoGo(t, addr, "order-sub")
	pub, _ := pahoGo(t, addr, "order-pub")
	subscribe(t, sub, 0, paho.SubscribeOptions{Topic: "order", QoS: 1})
	const total = 500
	errs := make(chan error, 1)
	go func() {
		for i := range total {
			if _, err := pub.Publish(context.Background(), &paho.Publish{Topic: "order", QoS: 1, Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for i := range total {
		p := receive(t, got)
		if string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d has payload %q: out of order", i, p.Payload)
		}
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// TestSlowSubscriberKeepsQoS1 sends bursts from many publishers at once,
// far more than the subscriber connection's queue holds: QoS 1 messages wait
// in the session and all arrive, each publisher's in order.
func TestSlowSubscriberKeepsQoS1(t *testing.T) {
	n := startFerry(t, func(c *config.Config) {
		c.MQTT.MaxInflight = 4
		c.MQTT.MaxQueued = 8
	})
	addr := n.MQTTAddr().String()
	sub, got := pahoGo(t, addr, "slow-sub")
	subscribe(t, sub, 0, paho.SubscribeOptions{Topic: "burst/#", QoS: 1})
	const publishers, each = 16, 40
	errs := make(chan error, publishers)
	for g := range publishers {
		pub, _ := pahoGo(t, addr, fmt.Sprintf("burst-pub-%d", g))
		go func() {
			for i := range each {
				if _, err := pub.Publish(context.Background(), &paho.Publish{Topic: fmt.Sprintf("burst/%d", g), QoS: 1, Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	next := make(map[string]int)
	for range publishers * each {
		p := receive(t, got)
		if want := fmt.Sprint(next[p.Topic]); string(p.Payload) != want {
			t.Fatalf("%s: got %q, want %q (order per publisher)", p.Topic, p.Payload, want)
		}
		next[p.Topic]++
	}
	for range publishers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := n.Hub().Stats(); st.Dropped != 0 {
		t.Errorf("hub dropped %d deliveries", st.Dropped)
	}
}

// pahoSession connects a paho.golang client with a session expiry and
// optional will; it returns the client without registering a cleanup, so
// tests can drop it at will.
func pahoSession(t *testing.T, addr, id string, clean bool, expiry uint32, will *paho.WillMessage, willDelay uint32) (*paho.Client, *paho.Connack, net.Conn) {
	t.Helper()
	cp := &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}, WillMessage: will}
	if will != nil {
		cp.WillProperties = &paho.WillProperties{WillDelayInterval: &willDelay}
	}
	cl, ack, nc, _ := pahoConnect(t, addr, cp)
	return cl, ack, nc
}

func TestMQTT5SessionExpiryAndWillDelay(t *testing.T) {
	n := startFerry(t)
	addr := n.MQTTAddr().String()
	watcher, wills := pahoGo(t, addr, "will-watcher")
	subscribe(t, watcher, 0, paho.SubscribeOptions{Topic: "wills/#", QoS: 1})

	// A session with expiry 1 s survives its connection, then ends.
	c, _, _ := pahoSession(t, addr, "expiring", true, 1, nil, 0)
	subscribe(t, c, 0, paho.SubscribeOptions{Topic: "exp/x", QoS: 1})
	c.Disconnect(&paho.Disconnect{})
	<-c.Done()
	c, ack, _ := pahoSession(t, addr, "expiring", false, 1, nil, 0)
	if !ack.SessionPresent {
		t.Fatal("session not present on a resume within its expiry")
	}
	c.Disconnect(&paho.Disconnect{})
	<-c.Done()
	waitFor(t, "session expiry", func() bool { return n.Hub().Stats().Subscripts == 1 }) // the watcher's only
	c, ack, _ = pahoSession(t, addr, "expiring", false, 1, nil, 0)
	if ack.SessionPresent {
		t.Error("session present after its expiry")
	}
	c.Disconnect(&paho.Disconnect{})
	<-c.Done()

	// Will delay: a client that dies and comes back within the delay sends
	// no will; one that stays away does, after the delay.
	will := &paho.WillMessage{Topic: "wills/a", QoS: 1, Payload: []byte("a died")}
	c, _, nc := pahoSession(t, addr, "delayed", true, 300, will, 3600)
	nc.Close() // abnormal end
	<-c.Done()
	waitFor(t, "session detached", func() bool { return n.Hub().Stats().Connected == 1 })
	c, ack, _ = pahoSession(t, addr, "delayed", false, 300, nil, 0)
	if !ack.SessionPresent {
		t.Error("delayed-will session not resumed")
	}
	c.Disconnect(&paho.Disconnect{})
	<-c.Done()

	will = &paho.WillMessage{Topic: "wills/b", QoS: 1, Payload: []byte("b died")}
	start := time.Now()
	c, _, nc = pahoSession(t, addr, "delayed-b", true, 300, will, 1)
	nc.Close()
	<-c.Done()
	p := receive(t, wills)
	if p.Topic != "wills/b" {
		t.Fatalf("got will %s %q, want only wills/b", p.Topic, p.Payload)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("will arrived after %v, before its 1 s delay", d)
	}
}

// TestMQTT5QuotaExceeded: when a subscriber's stored queue is full, a QoS 1
// publish that cannot reach it is answered with PUBACK 0x97, so the
// publisher knows a copy was lost.
func TestMQTT5QuotaExceeded(t *testing.T) {
	n := startFerry(t, func(c *config.Config) { c.MQTT.MaxQueuedOffline, c.MQTT.MaxStoredMessages = 1, 1 })
	addr := n.MQTTAddr().String()
	sub, _, _ := pahoSession(t, addr, "offline-sub", true, 300, nil, 0)
	subscribe(t, sub, 0, paho.SubscribeOptions{Topic: "quota", QoS: 1})
	sub.Disconnect(&paho.Disconnect{})
	<-sub.Done()
	pub, _ := pahoGo(t, addr, "quota-pub")
	if r := publish(t, pub, &paho.Publish{Topic: "quota", QoS: 1, Payload: []byte("fits")}); r.ReasonCode != 0 {
		t.Errorf("first publish: reason %#x, want 0", r.ReasonCode)
	}
	r, _ := pub.Publish(ctx5(t), &paho.Publish{Topic: "quota", QoS: 1, Payload: []byte("overflows")})
	if r == nil || r.ReasonCode != 0x97 {
		t.Errorf("publish beyond the subscriber's queue: %+v, want reason 0x97", r)
	}
}

func TestMQTT5ResponseInformation(t *testing.T) {
	n := startFerry(t)
	nc, err := net.DialTimeout("tcp", n.MQTTAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl := paho.NewClient(paho.ClientConfig{Conn: nc})
	ack, err := cl.Connect(ctx5(t), &paho.Connect{ClientID: "asker", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestResponseInfo: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(&paho.Disconnect{})
	if ack.Properties == nil || ack.Properties.ResponseInfo != "response/asker" {
		t.Errorf("CONNACK response information = %+v, want response/asker", ack.Properties)
	}
}

// TestSharedSubscriptionHandOver: a member that disconnects with an
// unacknowledged QoS 1 message of a shared subscription loses it to another
// member.
func TestSharedSubscriptionHandOver(t *testing.T) {
	n := startFerry(t)
	addr := n.MQTTAddr().String()
	a, _, err := dialRaw(addr, "member-a", true)
	if err != nil {
		t.Fatal(err)
	}
	a.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "$share/g/jobs", QoS: 1}}})
	if _, err := a.read(); err != nil {
		t.Fatal(err)
	}
	b, gotB := pahoGo(t, addr, "member-b")
	pub, _ := pahoGo(t, addr, "jobs-pub")
	// b joins after a's first job is delivered, so a surely holds one.
	publish(t, pub, &paho.Publish{Topic: "jobs", QoS: 1, Payload: []byte("job-1")})
	p, err := a.read()
	if err != nil {
		t.Fatal(err)
	}
	if pp, ok := p.(*packet.Publish); !ok || string(pp.Payload) != "job-1" {
		t.Fatalf("member a got %v, want job-1", p)
	}
	subscribe(t, b, 0, paho.SubscribeOptions{Topic: "$share/g/jobs", QoS: 1})
	a.conn.Close() // no PUBACK
	if got := receive(t, gotB); string(got.Payload) != "job-1" {
		t.Errorf("member b got %q, want the job a left unacknowledged", got.Payload)
	}
}

// TestMQTT5ServerKeepAliveAndReasonString: the server caps the keep alive
// (Server Keep Alive in CONNACK) and explains a refusal (Reason String).
func TestMQTT5ServerKeepAliveAndReasonString(t *testing.T) {
	n := startFerry(t, func(c *config.Config) {
		c.MQTT.MaxKeepAlive = 10
		c.Auth = true
		c.AllowAnonymous = true
	})
	addr := n.MQTTAddr().String()
	connect := func(cp *paho.Connect) *paho.Connack {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cl := paho.NewClient(paho.ClientConfig{Conn: nc})
		ack, _ := cl.Connect(ctx5(t), cp)
		if ack == nil {
			t.Fatal("no CONNACK")
		}
		if ack.ReasonCode == 0 {
			cl.Disconnect(&paho.Disconnect{})
		} else {
			nc.Close()
		}
		return ack
	}
	ack := connect(&paho.Connect{ClientID: "ka", CleanStart: true, KeepAlive: 60})
	if ack.Properties == nil || ack.Properties.ServerKeepAlive == nil || *ack.Properties.ServerKeepAlive != 10 {
		t.Errorf("Server Keep Alive = %+v, want 10", ack.Properties)
	}
	ack = connect(&paho.Connect{ClientID: "bad", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "nobody@nowhere", PasswordFlag: true, Password: []byte("x")})
	if ack.ReasonCode != 0x86 || ack.Properties == nil || ack.Properties.ReasonString == "" {
		t.Errorf("refused CONNACK = %#x %+v, want 0x86 with a reason string", ack.ReasonCode, ack.Properties)
	}
}

// TestMQTT5RetainedCap: past mqtt.max_retained retained topics, a retained
// QoS 1 publish for a new topic is answered with PUBACK 0x97 (it is
// delivered, not kept); replacing a retained message still succeeds.
func TestMQTT5RetainedCap(t *testing.T) {
	n := startFerry(t, func(c *config.Config) { c.MQTT.MaxRetained = 1 })
	pub, _ := pahoGo(t, n.MQTTAddr().String(), "retainer")
	if r := publish(t, pub, &paho.Publish{Topic: "cap/a", QoS: 1, Retain: true, Payload: []byte("1")}); r.ReasonCode != 0 {
		t.Errorf("first retained publish: reason %#x, want 0", r.ReasonCode)
	}
	if r, _ := pub.Publish(ctx5(t), &paho.Publish{Topic: "cap/b", QoS: 1, Retain: true, Payload: []byte("2")}); r == nil || r.ReasonCode != 0x97 {
		t.Errorf("retained publish past the cap: %+v, want reason 0x97", r)
	}
	if r := publish(t, pub, &paho.Publish{Topic: "cap/a", QoS: 1, Retain: true, Payload: []byte("3")}); r.ReasonCode != 0 {
		t.Errorf("replacing the retained message: reason %#x, want 0", r.ReasonCode)
	}
	if got := n.Hub().Stats().Retained; got != 1 {
		t.Errorf("%d retained messages, want 1", got)
	}
}
