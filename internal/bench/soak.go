package bench

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Soak runs mixed QoS 0/1/2 traffic for a long time while many persistent
// sessions come and go at random, and samples the broker's resources, to
// show that none of them grows without bound.
type Soak struct {
	Addr string
	// MetricsURL is the broker's Prometheus endpoint (Ferry: the HTTP
	// address + /metrics), read for RSS, open files and goroutines.
	MetricsURL string
	// DataDir, if set, is the broker's data directory, whose size is
	// sampled.
	DataDir  string
	Duration time.Duration
	// Sessions persistent subscribers (clean session 0) each connect for
	// 0.5 to 5 s, go away (cleanly or not) for 0 to 3 s, and come back.
	Sessions int
	// Rate is messages per second over all publishers, a third at each
	// QoS.
	Rate int
	// Every is the sampling interval.
	Every time.Duration
	// Sample, if set, receives each sample as it is taken.
	Sample func(SoakSample)
}

// SoakSample is the broker's resources at one moment.
type SoakSample struct {
	At          time.Duration
	RSS         int64 // bytes
	OpenFiles   int64
	Goroutines  int64
	StoreBytes  int64
	Published   int64 // acknowledged (QoS 0: sent) so far
	Received    int64 // deliveries to the sessions so far
	Connects    int64 // session connections so far
	PublishErrs int64
}

func (s SoakSample) String() string {
	return fmt.Sprintf("t=%s rss=%.1fMiB fds=%d goroutines=%d store=%.1fMiB published=%d received=%d connects=%d publish_errors=%d",
		s.At.Round(time.Second), float64(s.RSS)/(1<<20), s.OpenFiles, s.Goroutines, float64(s.StoreBytes)/(1<<20),
		s.Published, s.Received, s.Connects, s.PublishErrs)
}

// SoakResult is the first and last sample, and how many samples in
// between could not be read.
type SoakResult struct {
	Start, End    SoakSample
	FailedSamples int
}

func (r SoakResult) String() string {
	return fmt.Sprintf("start %s\nend   %s\nfailed samples: %d", r.Start, r.End, r.FailedSamples)
}

type soakCounters struct{ published, received, connects, publishErrs atomic.Int64 }

// Run runs the soak until s.Duration has passed or ctx ends.
func (s Soak) Run(ctx context.Context) (SoakResult, error) {
	if s.Sessions <= 0 {
		s.Sessions = 1000
	}
	if s.Rate <= 0 {
		s.Rate = 1500
	}
	if s.Every <= 0 {
		s.Every = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, s.Duration)
	defer cancel()
	var c soakCounters
	start := time.Now()
	sample := func(ctx context.Context) (SoakSample, error) {
		m, err := scrape(ctx, s.MetricsURL)
		if err != nil {
			return SoakSample{}, err
		}
		return SoakSample{
			At: time.Since(start), RSS: int64(m["process_resident_memory_bytes"]), OpenFiles: int64(m["process_open_fds"]),
			Goroutines: int64(m["go_goroutines"]), StoreBytes: dirSize(s.DataDir),
			Published: c.published.Load(), Received: c.received.Load(), Connects: c.connects.Load(), PublishErrs: c.publishErrs.Load(),
		}, nil
	}
	first, err := sample(ctx)
	if err != nil {
		return SoakResult{}, fmt.Errorf("reading %s: %w", s.MetricsURL, err)
	}
	if s.Sample != nil {
		s.Sample(first)
	}
	id := runID()
	var wg sync.WaitGroup
	for i := range s.Sessions {
		wg.Go(func() { s.session(ctx, fmt.Sprintf("soak-%s-%d", id, i), fmt.Sprintf("soak/%d/#", i%50), &c) })
	}
	const publishers = 6
	for i := range publishers {
		wg.Go(func() { s.publisher(ctx, fmt.Sprintf("soak-pub-%s-%d", id, i), byte(i%3), s.Rate/publishers, &c) })
	}
	last, failed := first, 0
	tick := time.NewTicker(s.Every)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			smp, err := sample(ctx)
			if err != nil {
				failed++ // the broker may be busy; the end sample must succeed
				continue
			}
			last = smp
			if s.Sample != nil {
				s.Sample(smp)
			}
		}
	}
	tick.Stop()
	wg.Wait()
	// Leave no persistent session behind: an abandoned one would keep
	// collecting messages in the next soak.
	for i := range s.Sessions {
		if cl, err := dial(s.Addr, fmt.Sprintf("soak-%s-%d", id, i), true); err == nil {
			cl.close()
		}
	}
	// The end sample, once the clients are gone and the broker has had a
	// moment to close their connections.
	ectx, ecancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ecancel()
	time.Sleep(2 * time.Second)
	end, err := sample(ectx)
	if err != nil {
		return SoakResult{Start: first, End: last, FailedSamples: failed}, fmt.Errorf("the end sample from %s: %w", s.MetricsURL, err)
	}
	if s.Sample != nil {
		s.Sample(end)
	}
	return SoakResult{Start: first, End: end, FailedSamples: failed}, nil
}

// session is one persistent subscriber coming and going until ctx ends.
func (s Soak) session(ctx context.Context, id, filter string, c *soakCounters) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(len(id))))
	subscribed := false
	for ctx.Err() == nil {
		cl, err := dial(s.Addr, id, false)
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		c.connects.Add(1)
		if !subscribed {
			if err := cl.subscribe(filter, 2); err != nil {
				cl.conn.Close()
				sleepCtx(ctx, time.Second)
				continue
			}
			subscribed = true
		}
		online := time.Duration(500+rng.IntN(4500)) * time.Millisecond
		cl.conn.SetReadDeadline(time.Now().Add(online))
		stop := context.AfterFunc(ctx, func() { cl.conn.Close() })
		for {
			p, err := cl.read()
			if err != nil {
				break
			}
			switch p := p.(type) {
			case *packet.Publish:
				switch p.QoS {
				case 0:
					c.received.Add(1)
				case 1:
					c.received.Add(1)
					cl.write(&packet.Puback{PacketID: p.PacketID})
				case 2:
					cl.write(&packet.Pubrec{PacketID: p.PacketID})
				}
			case *packet.Pubrel:
				c.received.Add(1)
				cl.write(&packet.Pubcomp{PacketID: p.PacketID})
			}
			if cl.r.Buffered() == 0 {
				cl.flush()
			}
		}
		stop()
		if rng.IntN(2) == 0 {
			cl.close()
		} else {
			cl.conn.Close() // abnormal end
		}
		sleepCtx(ctx, time.Duration(rng.IntN(3000))*time.Millisecond)
	}
}

// publisher sends rate messages per second at qos, one at a time.
func (s Soak) publisher(ctx context.Context, id string, qos byte, rate int, c *soakCounters) {
	every := time.Second / time.Duration(max(rate, 1))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(qos)))
	payload := make([]byte, 128)
	for ctx.Err() == nil {
		cl, err := dial(s.Addr, id, true)
		if err != nil {
			c.publishErrs.Add(1)
			sleepCtx(ctx, time.Second)
			continue
		}
		tick := time.NewTicker(every)
		for pid := uint16(1); ctx.Err() == nil; pid = pid%60000 + 1 {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
			topic := "soak/" + strconv.Itoa(rng.IntN(50)) + "/x"
			if err := cl.write(&packet.Publish{Topic: topic, QoS: qos, PacketID: pid, Payload: payload}); err != nil || cl.flush() != nil {
				c.publishErrs.Add(1)
				break
			}
			if qos == 0 {
				c.published.Add(1)
				continue
			}
			if err := awaitAck(cl, qos, pid); err != nil {
				c.publishErrs.Add(1)
				break
			}
			c.published.Add(1)
		}
		tick.Stop()
		cl.close()
	}
}

// awaitAck reads the acknowledgement of pid (QoS 2: PUBREC, then PUBREL
// sent and PUBCOMP read).
func awaitAck(cl *client, qos byte, pid uint16) error {
	cl.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer cl.conn.SetReadDeadline(time.Time{})
	for {
		p, err := cl.read()
		if err != nil {
			return err
		}
		switch p := p.(type) {
		case *packet.Puback:
			if qos == 1 && p.PacketID == pid {
				return nil
			}
		case *packet.Pubrec:
			if err := cl.write(&packet.Pubrel{PacketID: p.PacketID}); err != nil {
				return err
			}
			if err := cl.flush(); err != nil {
				return err
			}
		case *packet.Pubcomp:
			if p.PacketID == pid {
				return nil
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// scrape reads the unlabelled samples of a Prometheus text endpoint.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// dirSize is the size of the files under dir; 0 when dir is empty.
func dirSize(dir string) int64 {
	if dir == "" {
		return 0
	}
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
