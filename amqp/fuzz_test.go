package amqp

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// FuzzServerFrames feeds arbitrary bytes to a Listener after a valid
// protocol header and open: the engine must answer or close, never panic
// or hang (the read deadline catches a hang).
func FuzzServerFrames(f *testing.F) {
	seed := func(bodies ...frame.Body) []byte {
		var b []byte
		for _, body := range bodies {
			b, _ = frame.Append(b, frame.TypeAMQP, 0, body)
		}
		return b
	}
	zero := uint32(0)
	begin := &frame.Begin{IncomingWindow: 10, OutgoingWindow: 10}
	attach := &frame.Attach{Name: "l", Role: frame.RoleSender, Source: &frame.Source{},
		Target: &frame.Target{Address: "q"}, InitialDeliveryCount: &zero}
	f.Add(seed(begin))
	f.Add(seed(begin, attach, transfer(0, 0, oneMsg), &frame.Detach{Closed: true}, &frame.End{}, &frame.Close{}))
	f.Add(seed(begin, &frame.Attach{Name: "r", Role: frame.RoleReceiver, Source: &frame.Source{Address: "q"}, Target: &frame.Target{}},
		&frame.Flow{IncomingWindow: 10, OutgoingWindow: 10, Handle: &zero, LinkCredit: new(uint32)}))
	f.Add(seed(begin, attach, &frame.Transfer{Handle: 0, DeliveryID: &zero, DeliveryTag: []byte{1}, More: true, Payload: oneMsg[:2]}))
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0})

	b := newTestBroker()
	l := startListener(f, b, &ListenerOptions{MaxFrameSize: 4096})
	opened, _ := frame.Append(frame.Proto(frame.ProtoAMQP).AppendTo(nil), frame.TypeAMQP, 0,
		&frame.Open{ContainerID: "fuzz", MaxFrameSize: 4096, ChannelMax: 8})
	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(append(append([]byte(nil), opened...), in...)); err != nil {
			return // the engine may close before reading everything
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, nc); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("engine neither answered nor closed")
			}
		}
	})
}
