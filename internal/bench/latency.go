package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Latency describes the latency scenario: one publisher paced at Rate
// messages per second for Duration, one subscriber on the same topic. Each
// payload carries its sequence number and the time it was written; the
// subscriber computes the delay on arrival. Messages of the first Warmup are
// delivered and counted for loss but left out of the percentiles.
type Latency struct {
	Addr     string
	Rate     int // messages per second
	Duration time.Duration
	Warmup   time.Duration
	Payload  int // bytes, at least 16
	QoS      byte
	// Window bounds unacknowledged QoS 1 publishes.
	Window int
	// Idle is how long the subscriber waits for the next message before it
	// counts the rest as lost.
	Idle time.Duration
}

// LatencyResult is the outcome of one latency run.
type LatencyResult struct {
	Sent, Received int
	Samples        int // deliveries after the warm-up
	P50, P99, Max  time.Duration
	// Behind is how far the publisher fell behind its schedule at most: a
	// large value means the generator, not the broker, set the pace.
	Behind time.Duration
}

// Loss is the fraction of published messages not delivered.
func (r LatencyResult) Loss() float64 { return loss(r.Sent, r.Received) }

func (r LatencyResult) String() string {
	return fmt.Sprintf("sent %d received %d: p50 %s p99 %s max %s over %d samples, loss %.2f%%",
		r.Sent, r.Received, fmtMillis(r.P50), fmtMillis(r.P99), fmtMillis(r.Max), r.Samples, 100*r.Loss())
}

func fmtMillis(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

const latencyHeader = 16 // sequence number and send time, 8 bytes each

// Run runs the scenario once.
func (l Latency) Run(ctx context.Context) (LatencyResult, error) {
	if l.Rate <= 0 || l.Duration <= 0 {
		return LatencyResult{}, fmt.Errorf("latency: rate and duration must be positive")
	}
	if l.Payload < latencyHeader {
		l.Payload = latencyHeader
	}
	if l.Window <= 0 {
		l.Window = 64
	}
	if l.Idle <= 0 {
		l.Idle = 3 * time.Second
	}
	total := int(math.Round(l.Duration.Seconds() * float64(l.Rate)))
	if total < 1 {
		total = 1
	}
	warm := min(int(l.Warmup.Seconds()*float64(l.Rate)), total-1)

	run := runID()
	topic := "bench/" + run + "/lat"
	sub, err := dial(l.Addr, "bench-sub-"+run, true)
	if err != nil {
		return LatencyResult{}, fmt.Errorf("subscriber: %w", err)
	}
	defer sub.conn.Close()
	if err := sub.subscribe(topic, l.QoS); err != nil {
		return LatencyResult{}, err
	}
	pc, err := dial(l.Addr, "bench-pub-"+run, true)
	if err != nil {
		return LatencyResult{}, fmt.Errorf("publisher: %w", err)
	}
	defer pc.conn.Close()

	lat := make([]time.Duration, 0, total-warm)
	received := 0
	subDone := make(chan error, 1)
	go func() {
		subDone <- sub.receive(total, l.Idle, func(p *packet.Publish) {
			now := time.Now().UnixNano()
			received++
			if len(p.Payload) < latencyHeader {
				return
			}
			seq := binary.BigEndian.Uint64(p.Payload)
			sentAt := int64(binary.BigEndian.Uint64(p.Payload[8:]))
			if seq >= uint64(warm) {
				lat = append(lat, time.Duration(now-sentAt))
			}
		})
	}()

	res := LatencyResult{Sent: total}
	pub := newPublisher(pc, l.QoS, l.Window, total)
	interval := time.Second / time.Duration(l.Rate)
	payload := make([]byte, l.Payload) // copied into the write buffer
	start := time.Now()
	for seq := 0; seq < total; {
		if ctx.Err() != nil {
			return LatencyResult{}, ctx.Err()
		}
		// Write every message that is due, then sleep until the next one.
		elapsed := time.Since(start)
		due := min(int(elapsed/interval)+1, total)
		if behind := elapsed - time.Duration(seq)*interval; seq < due && behind > res.Behind {
			res.Behind = behind
		}
		for ; seq < due; seq++ {
			binary.BigEndian.PutUint64(payload, uint64(seq))
			binary.BigEndian.PutUint64(payload[8:], uint64(time.Now().UnixNano()))
			if err := pub.publish(ctx, &packet.Publish{Topic: topic, Payload: payload}); err != nil {
				return LatencyResult{}, fmt.Errorf("publisher: %w", err)
			}
		}
		if err := pc.flush(); err != nil {
			return LatencyResult{}, fmt.Errorf("publisher: %w", err)
		}
		if seq < total {
			time.Sleep(time.Until(start.Add(time.Duration(seq) * interval)))
		}
	}
	if err := pub.finish(); err != nil {
		return LatencyResult{}, fmt.Errorf("publisher: %w", err)
	}
	if err := <-subDone; err != nil {
		return LatencyResult{}, err
	}
	res.Received = received
	res.Samples = len(lat)
	res.P50, res.P99, res.Max = percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1)
	pc.close()
	sub.close()
	return res, nil
}

// percentile returns the smallest sample not exceeded by the fraction q of
// all samples (nearest rank); it sorts d in place.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	if !slices.IsSorted(d) {
		slices.Sort(d)
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}
