package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

// TestHonoEventsSurviveSIGKILL publishes events at QoS 1 while an
// application receives and settles only some of them, kills Ferry with
// SIGKILL, restarts it on the same data directory and checks that every
// event whose PUBACK the device got and that the application did not
// accept before the crash reaches the application after it, each
// device's events in order apart from redeliveries.
func TestHonoEventsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	s := &crashServer{t: t, bin: ferryBinary(t), dir: filepath.Join(t.TempDir(), "data"), port: freePort(t), appPort: freePort(t)}
	s.start()
	t.Cleanup(s.kill)
	appAddr := "amqp://127.0.0.1:" + s.appPort
	topic := "event/" + tenant + "/dev-1"

	// The application's group exists before the first event.
	c, rcv := dialEvents(t, appAddr, 200) // go-amqp grants credit only for settled messages
	next := 0
	stop := make(chan struct{})
	ackedCh := make(chan []int, 1)
	go func() { ackedCh <- publishNumbered("127.0.0.1:"+s.port, "ev-pub", topic, 1, &next, stop) }()

	// Settle half of what arrives; leave the rest unsettled.
	seen, accepted := map[int]bool{}, map[int]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 150; i++ {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("before the crash, after %d events received and %d published: %v", i, next, err)
		}
		n, _ := strconv.Atoi(string(m.GetData()))
		seen[n] = true
		if i%2 == 0 {
			if err := rcv.AcceptMessage(ctx, m); err != nil {
				t.Fatal(err)
			}
			accepted[n] = true
		}
	}
	s.kill()
	close(stop)
	acked := <-ackedCh
	c.Close()
	// The publisher has one event in flight: the last one the
	// application received may have been killed with its PUBACK unsent.
	if len(acked) < 149 {
		t.Fatalf("only %d events acknowledged before the crash, of 150 received", len(acked))
	}

	s.start()
	c2, rcv2 := dialEvents(t, appAddr, 500)
	defer c2.Close()
	got := map[int]bool{}
	last := -1
	redelivered := 0
	want := map[int]bool{}
	for _, n := range acked {
		if !accepted[n] { // accepted before the crash: done with
			want[n] = true
		}
	}
	for len(want) > 0 {
		m, err := rcv2.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("after the restart, %d acknowledged events missing (e.g. %v): %v", len(want), anyKey(want), err)
		}
		n, _ := strconv.Atoi(string(m.GetData()))
		if err := rcv2.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		switch {
		case got[n] || seen[n]:
			redelivered++
		case n < last:
			t.Fatalf("event %d arrived after %d: out of order and not a redelivery", n, last)
		}
		got[n] = true
		last = max(last, n)
		delete(want, n)
	}
	t.Logf("%d events acknowledged before SIGKILL, %d received before it; all arrived after the restart (%d redelivered)", len(acked), len(seen), redelivered)
}

func dialEvents(t *testing.T, addr string, credit int32) (*goamqp.Conn, *goamqp.Receiver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := goamqp.Dial(ctx, addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sess.NewReceiver(ctx, "event/"+tenant, &goamqp.ReceiverOptions{Credit: credit})
	if err != nil {
		t.Fatal(err)
	}
	return c, r
}

func anyKey(m map[int]bool) int {
	for k := range m {
		return k
	}
	return -1
}
