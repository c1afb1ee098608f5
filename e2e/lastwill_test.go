package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// These tests give a Qpid Proton client (testdata/lwt_client.py) a last
// will at $lwt on the application listener; an MQTT subscriber gets it
// when the client is killed, and not when it leaves cleanly.

// lwtClient starts lwt_client.py and waits until its will is accepted.
func lwtClient(t *testing.T, py, addr, id, topic, payload string, args ...string) *proc {
	t.Helper()
	p := startProc(t, py, append([]string{"testdata/lwt_client.py", addr, id, topic, payload}, args...)...)
	waitFor(t, "the will of "+id+" accepted", func() bool {
		return strings.Contains(p.out.String(), "will accepted\n")
	})
	return p
}

func nextPublish(t *testing.T, received <-chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case m := <-received:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message for the MQTT subscriber")
	}
	return nil
}

func TestLastWillProtonKilled(t *testing.T) {
	py := requireProton(t)
	n := startFerry(t)
	cl, received := pahoGo(t, n.MQTTAddr().String(), "watcher")
	subscribe(t, cl, 0, paho.SubscribeOptions{Topic: "wills/#", QoS: 1, RetainAsPublished: true})

	p := lwtClient(t, py, n.AppAddr().String(), "proton-1", "wills/proton-1", "proton-1 died", "--qos", "1", "--retain")
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m := nextPublish(t, received)
	if m.Topic != "wills/proton-1" || string(m.Payload) != "proton-1 died" || m.QoS != 1 || !m.Retain {
		t.Fatalf("got %s %q QoS %d retain %v, want wills/proton-1 %q QoS 1 retained", m.Topic, m.Payload, m.QoS, m.Retain, "proton-1 died")
	}
	// Retained: a later subscriber gets it too.
	late, lateReceived := pahoGo(t, n.MQTTAddr().String(), "late")
	subscribe(t, late, 0, paho.SubscribeOptions{Topic: "wills/proton-1", QoS: 1})
	if m := nextPublish(t, lateReceived); string(m.Payload) != "proton-1 died" {
		t.Fatalf("retained %q, want the will", m.Payload)
	}
}

func TestLastWillProtonCleanClose(t *testing.T) {
	py := requireProton(t)
	n := startFerry(t)
	cl, received := pahoGo(t, n.MQTTAddr().String(), "watcher")
	subscribe(t, cl, 0, paho.SubscribeOptions{Topic: "wills/#", QoS: 1})

	p := lwtClient(t, py, n.AppAddr().String(), "proton-2", "wills/proton-2", "should not be sent", "--close")
	if out := p.wait(t); !strings.Contains(out, "closed\n") {
		t.Fatalf("the client did not close cleanly:\n%s", out)
	}
	// Once the will session is gone (the departure processed), a marker
	// would arrive after a will published by mistake.
	waitFor(t, "the will session to end", func() bool { return n.Hub().Stats().Sessions == 1 })
	if _, err := cl.Publish(ctx5(t), &paho.Publish{Topic: "wills/proton-2", QoS: 1, Payload: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	if m := nextPublish(t, received); string(m.Payload) != "marker" {
		t.Fatalf("got %s %q before the marker", m.Topic, m.Payload)
	}
}
