package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Idle describes the idle-connections scenario: Conns clients connect with
// a keep alive, stay connected without traffic for Hold (pinging when the
// keep alive asks for it) and are then checked with one PINGREQ each. When
// PID names the broker's process, its resident memory is read from
// /proc/PID/status before the first connection and after Hold.
type Idle struct {
	Addr      string
	Conns     int
	KeepAlive time.Duration // rounded down to seconds
	Hold      time.Duration
	// Sources are the local addresses to connect from, in turn (e.g.
	// 127.0.0.1, 127.0.0.2, ...): each has its own range of ephemeral
	// ports. Empty lets the system choose.
	Sources []net.IP
	// Parallel is the number of connections being opened at once.
	Parallel int
	PID      int
	// ProcRoot is where /proc is mounted; empty means /proc.
	ProcRoot string
}

// IdleResult is the outcome of one idle run.
type IdleResult struct {
	Conns  int // attempted
	Opened int // acknowledged with CONNACK
	Alive  int // answered the final PINGREQ
	// FirstErr is the first failure to open or keep a connection.
	FirstErr            error
	RSSBefore, RSSAfter int64 // bytes; zero without PID
	Open                time.Duration
}

// Loss is the fraction of attempted connections not alive at the end.
func (r IdleResult) Loss() float64 { return loss(r.Conns, r.Alive) }

// PerConn is the broker's resident memory growth per live connection,
// bytes; zero without a PID or live connections.
func (r IdleResult) PerConn() float64 {
	if r.Alive == 0 || r.RSSAfter == 0 {
		return 0
	}
	return float64(r.RSSAfter-r.RSSBefore) / float64(r.Alive)
}

func (r IdleResult) String() string {
	s := fmt.Sprintf("%d connections: %d opened in %v, %d alive", r.Conns, r.Opened, r.Open.Round(time.Millisecond), r.Alive)
	if r.RSSAfter > 0 {
		s += fmt.Sprintf(", broker RSS %.1f -> %.1f MB: %.2f KB per connection",
			float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.PerConn()/1024)
	}
	s += fmt.Sprintf(", loss %.2f%%", 100*r.Loss())
	if r.FirstErr != nil {
		s += fmt.Sprintf(" (first error: %v)", r.FirstErr)
	}
	return s
}

// Run runs the scenario once.
func (s Idle) Run(ctx context.Context) (IdleResult, error) {
	if s.Conns < 1 {
		return IdleResult{}, errors.New("idle: at least one connection")
	}
	if s.Parallel <= 0 {
		s.Parallel = 64
	}
	keepAlive := uint16(min(s.KeepAlive/time.Second, 65535))
	res := IdleResult{Conns: s.Conns}
	var err error
	if s.PID > 0 {
		if res.RSSBefore, err = s.rss(); err != nil {
			return res, err
		}
	}

	run := runID()
	conns := make([]net.Conn, s.Conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				// No TIME_WAIT on our side: the ports are needed again.
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				c.Close()
			}
		}
	}()
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(s.Parallel, s.Conns) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= s.Conns || ctx.Err() != nil {
					return
				}
				c, err := s.open(i, fmt.Sprintf("idle-%s-%d", run, i), keepAlive)
				if err != nil {
					fail(fmt.Errorf("connection %d: %w", i, err))
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	res.Open = time.Since(start)
	for _, c := range conns {
		if c != nil {
			res.Opened++
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// Hold, pinging at half the keep alive when the hold outlasts it.
	pings := 0
	pingEvery := time.Duration(keepAlive) * time.Second / 2
	holdEnd := time.Now().Add(s.Hold)
	for {
		wait := time.Until(holdEnd)
		if pingEvery > 0 && pingEvery < wait {
			wait = pingEvery
		}
		if wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
		if !time.Now().Before(holdEnd) {
			break
		}
		pingAll(conns, fail)
		pings++
	}
	if s.PID > 0 {
		if res.RSSAfter, err = s.rss(); err != nil {
			return res, err
		}
	}

	// Every connection must answer one more PINGREQ, after the responses
	// to those of the hold.
	pingAll(conns, fail)
	pings++
	var alive atomic.Int64
	next.Store(0)
	for range min(s.Parallel, s.Conns) {
		wg.Go(func() {
			want := bytes.Repeat([]byte{byte(packet.TypePingresp) << 4, 0}, pings)
			got := make([]byte, len(want))
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				c := conns[i]
				if c == nil {
					continue
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.ReadFull(c, got); err != nil {
					fail(fmt.Errorf("connection %d: waiting for PINGRESP: %w", i, err))
					continue
				}
				if !bytes.Equal(got, want) {
					fail(fmt.Errorf("connection %d: expected %d PINGRESP, read % x", i, pings, got))
					continue
				}
				alive.Add(1)
			}
		})
	}
	wg.Wait()
	res.Alive = int(alive.Load())
	res.FirstErr = firstErr
	return res, nil
}

// open connects client i with the given identifier and waits for its
// CONNACK.
func (s Idle) open(i int, id string, keepAlive uint16) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if len(s.Sources) > 0 {
		d.LocalAddr = &net.TCPAddr{IP: s.Sources[i%len(s.Sources)]}
	}
	c, err := d.Dial("tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	b, err := (&packet.Connect{ProtocolName: "MQTT", ClientID: id, CleanStart: true, KeepAlive: keepAlive}).Append(nil, packet.V311)
	if err == nil {
		_, err = c.Write(b)
	}
	if err == nil {
		// A 3.1.1 CONNACK is four bytes: 0x20 0x02 flags code.
		ack := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err = io.ReadFull(c, ack); err == nil && (ack[0] != 0x20 || ack[1] != 2 || ack[3] != 0) {
			err = fmt.Errorf("unexpected CONNACK % x", ack)
		}
		c.SetReadDeadline(time.Time{})
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func pingAll(conns []net.Conn, fail func(error)) {
	ping := []byte{byte(packet.TypePingreq) << 4, 0}
	for i, c := range conns {
		if c == nil {
			continue
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(ping); err != nil {
			fail(fmt.Errorf("connection %d: PINGREQ: %w", i, err))
		}
	}
}

func (s Idle) rss() (int64, error) {
	root := s.ProcRoot
	if root == "" {
		root = "/proc"
	}
	f, err := os.Open(fmt.Sprintf("%s/%d/status", root, s.PID))
	if err != nil {
		return 0, fmt.Errorf("broker memory: %w", err)
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS returns the VmRSS line of a /proc/PID/status file in bytes.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("broker memory: unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("broker memory: %w", err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("broker memory: %w", err)
	}
	return 0, errors.New("broker memory: no VmRSS line")
}
