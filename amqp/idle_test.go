package amqp

import (
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// BenchmarkIdleConnMemory measures what the server side holds per idle
// connection: peers (raw sockets, no client library in the process) open
// a connection, a session and a sending link as a device would, then go
// quiet. Reported: heap and stack bytes per connection after a GC.
func BenchmarkIdleConnMemory(b *testing.B) {
	const conns = 2000
	for range b.N {
		var links atomic.Int64
		l := startListener(b, newTestBroker(), &ListenerOptions{IdleTimeout: -1, Handler: HandlerFunc(func(req *LinkRequest) error {
			links.Add(1)
			return nil
		})})
		hello, err := idleHello()
		if err != nil {
			b.Fatal(err)
		}
		before, stackBefore := memInUse()
		socks := make([]net.Conn, 0, conns)
		for range conns {
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			socks = append(socks, nc)
			if _, err := nc.Write(hello); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for links.Load() < conns {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d links attached", links.Load(), conns)
			}
			time.Sleep(10 * time.Millisecond) // polling a count, not readiness of one peer
		}
		time.Sleep(3 * parkAfter) // idle for real: the connections park their read buffers
		after, stackAfter := memInUse()
		b.ReportMetric(float64(after-before)/conns, "bytes/conn")
		b.ReportMetric(float64(stackAfter-stackBefore)/conns, "stack-bytes/conn")
		if path := os.Getenv("FERRY_IDLE_HEAPPROFILE"); path != "" {
			// What the idle connections hold, for go tool pprof.
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
		for _, nc := range socks {
			nc.Close()
		}
		l.Close()
	}
}

// idleHello is what an idle device sends: header, open, begin, attach.
func idleHello() ([]byte, error) {
	b := frame.Proto(frame.ProtoAMQP).AppendTo(nil)
	var err error
	for _, f := range []struct {
		ch   uint16
		body frame.Body
	}{
		{0, &frame.Open{ContainerID: "idle", MaxFrameSize: 1 << 16, ChannelMax: 10}},
		{0, &frame.Begin{IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 10}},
		{0, &frame.Attach{Name: "telemetry", Role: frame.RoleSender, Source: &frame.Source{},
			Target: &frame.Target{Address: "telemetry"}, InitialDeliveryCount: new(uint32)}},
	} {
		if b, err = frame.Append(b, frame.TypeAMQP, f.ch, f.body); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// memInUse returns the heap and stack in use, and the stack alone.
func memInUse() (uint64, uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, ms.StackInuse
}
