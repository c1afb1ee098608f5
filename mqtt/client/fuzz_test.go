package client

import (
	"io"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// FuzzInbound feeds arbitrary bytes to a client as the server's output
// after a valid CONNACK: the client must neither panic nor hang, and must
// end once the server side closes.
func FuzzInbound(f *testing.F) {
	alias := uint16(1)
	for _, p := range []packet.Packet{
		&packet.Publish{Topic: "a", Payload: []byte("x")},
		&packet.Publish{QoS: 2, PacketID: 1, Topic: "a", Properties: packet.Properties{TopicAlias: &alias}},
		&packet.Pubrel{PacketID: 1},
		&packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{packet.GrantedQoS1}},
		&packet.Disconnect{ReasonCode: packet.ServerShuttingDown},
	} {
		b, err := p.Append(nil, packet.V5)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, fc := connectFake(t, Options{ReceiveMaximum: 4, TopicAliasMaximum: 2, KeepAlive: -1, OnMessage: func(*Message) {}},
			&packet.Connack{Properties: packet.Properties{TopicAliasMaximum: &alias}})
		go io.Copy(io.Discard, fc.nc)
		// Keep the client's in-flight and pending state non-trivial.
		go c.PublishAsync(testContext(t), &Message{Topic: "out", QoS: 2})
		fc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		fc.nc.Write(data)
		fc.nc.Close()
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("client did not end after the server closed")
		}
	})
}
