package pebblestore

import (
	"slices"
	"testing"

	"github.com/ferry-iot/ferry/mqtt/client"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStore: what was put is loaded after a reopen, outgoing messages in
// the order they were first sent, with their state and properties;
// deletes and Reset forget.
func TestStore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	const ct = "text/plain"
	msgs := []client.Stored{
		{Seq: 7, Publish: &packet.Publish{PacketID: 3, Topic: "a", QoS: 1, Payload: []byte("x")}},
		{Seq: 2, Released: true, Publish: &packet.Publish{PacketID: 9, Topic: "b", QoS: 2, Payload: []byte("y"),
			Properties: packet.Properties{ContentType: ct}}},
		{Seq: 5, Publish: &packet.Publish{PacketID: 4, Topic: "c", QoS: 1}},
	}
	for _, m := range msgs {
		if err := s.PutOutgoing(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []uint16{11, 12} {
		if err := s.PutInbound(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteOutgoing(4); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteInbound(11); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir) // a restart
	out, in, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Seq != 2 || out[1].Seq != 7 {
		t.Fatalf("outgoing %+v, want seq 2 then 7", out)
	}
	if m := out[0]; !m.Released || m.Publish.PacketID != 9 || m.Publish.Topic != "b" || string(m.Publish.Payload) != "y" ||
		m.Publish.Properties.ContentType != ct {
		t.Fatalf("message 9 came back as %+v %+v", m, m.Publish)
	}
	if !slices.Equal(in, []uint16{12}) {
		t.Fatalf("inbound %v, want [12]", in)
	}
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	if out, in, err := s.Load(); err != nil || len(out) != 0 || len(in) != 0 {
		t.Fatalf("after Reset: %v %v %v", out, in, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("a second Close did not say so")
	}
}
