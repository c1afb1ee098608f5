package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// rawClient is a minimal MQTT 3.1.1 client for the crash test: it must see
// every packet (duplicates included), which library clients hide.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
	mu   sync.Mutex // guards w
	w    *bufio.Writer
}

func dialRaw(addr, id string, clean bool) (*rawClient, bool, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, false, err
	}
	c := &rawClient{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	if err := c.send(&packet.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30}); err != nil {
		conn.Close()
		return nil, false, err
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := c.read()
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, false, err
	}
	ack, ok := p.(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success {
		conn.Close()
		return nil, false, fmt.Errorf("connect refused: %v", p)
	}
	return c, ack.SessionPresent, nil
}

// send writes p at once.
func (c *rawClient) send(p packet.Packet) error {
	if err := c.queue(p); err != nil {
		return err
	}
	return c.flush()
}

// queue buffers p; flush writes what is buffered.
func (c *rawClient) queue(p packet.Packet) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := p.Append(c.w.AvailableBuffer(), packet.V311)
	if err != nil {
		return err
	}
	_, err = c.w.Write(b)
	return err
}

func (c *rawClient) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

func (c *rawClient) read() (packet.Packet, error) {
	return packet.Read(c.r, packet.V311)
}

// crashServer runs the ferry binary on a data directory.
type crashServer struct {
	t    *testing.T
	bin  string
	dir  string
	port string
	// appPort, if set, is the port of the northbound AMQP listener.
	appPort string
	cmd     *exec.Cmd
	done    chan struct{}
}

func (s *crashServer) start() {
	s.t.Helper()
	app := ""
	if s.appPort != "" {
		app = "127.0.0.1:" + s.appPort
	}
	s.cmd = exec.Command(s.bin, "serve", "--data-dir", s.dir, "--mqtt-addr", "127.0.0.1:"+s.port,
		"--http-addr", "", "--amqp-app-addr", app, "--amqp-addr", "", "--log-level", "warn")
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	waitFor(s.t, "ferry listening", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+s.port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (s *crashServer) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// subscriber keeps a persistent session and counts what it receives.
type subscriber struct {
	id     string
	filter string
	qos    byte
	mu     sync.Mutex
	counts map[int]int // message number -> deliveries (QoS 2: completed by PUBREL)
	// held is the QoS 2 receive state, kept across connections as a
	// client must: packet id -> message number and whether its first
	// PUBLISH was marked DUP.
	held map[uint16]heldMessage
	// breaks counts first deliveries of a number lower than one already
	// delivered; resent are those whose PUBLISH was marked DUP (a message
	// resent after a restart), unexplained the others.
	resentBreaks, unexplainedBreaks int
	highest                         int
	examples                        []string
	// subacked, if not nil, hears of each SUBACK.
	subacked chan struct{}
}

type heldMessage struct {
	n   int
	dup bool
}

// delivered records the completion of message n; s.mu is held.
func (s *subscriber) delivered(n int, dup bool) {
	s.counts[n]++
	if s.counts[n] > 1 {
		return
	}
	if n < s.highest {
		if dup {
			s.resentBreaks++
		} else {
			s.unexplainedBreaks++
			if len(s.examples) < 5 {
				s.examples = append(s.examples, fmt.Sprintf("%d after %d", n, s.highest))
			}
		}
		return
	}
	s.highest = n
}

// waitAll waits until count distinct messages have arrived. A loaded
// machine (CI, -race) may take long for 100,000 of them: what fails is a
// delivery that stops, 10 s without a new message, or two minutes in all.
func (s *subscriber) waitAll(t *testing.T, count int) {
	t.Helper()
	start := time.Now()
	last, progress := -1, start
	for {
		s.mu.Lock()
		n := len(s.counts)
		s.mu.Unlock()
		now := time.Now()
		switch {
		case n == count:
			return
		case n != last:
			last, progress = n, now
		case now.Sub(progress) > 10*time.Second || now.Sub(start) > 2*time.Minute:
			t.Fatalf("%d of %d messages delivered after %v; none for %v", n, count,
				now.Sub(start).Round(time.Millisecond), now.Sub(progress).Round(time.Millisecond))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *subscriber) run(addr string, stop <-chan struct{}) error {
	c, _, err := dialRaw(addr, s.id, false)
	if err != nil {
		return err
	}
	return s.runOn(c, stop)
}

// runOn subscribes on c and receives until stop or the connection ends.
func (s *subscriber) runOn(c *rawClient, stop <-chan struct{}) error {
	defer c.conn.Close()
	go func() { <-stop; c.conn.Close() }()
	if err := c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: s.filter, QoS: s.qos}}}); err != nil {
		return err
	}
	for {
		p, err := c.read()
		if err != nil {
			return nil // the server died or we stopped
		}
		switch p := p.(type) {
		case *packet.Suback:
			if s.subacked != nil {
				s.subacked <- struct{}{}
			}
		case *packet.Publish:
			n, _ := strconv.Atoi(string(p.Payload))
			switch p.QoS {
			case 1:
				s.mu.Lock()
				s.delivered(n, p.Dup)
				s.mu.Unlock()
				c.send(&packet.Puback{PacketID: p.PacketID})
			case 2:
				// Method B receiver: keep the message until PUBREL; a
				// duplicate PUBLISH of a held id is the same message.
				s.mu.Lock()
				if _, ok := s.held[p.PacketID]; !ok {
					s.held[p.PacketID] = heldMessage{n: n, dup: p.Dup}
				}
				s.mu.Unlock()
				c.send(&packet.Pubrec{PacketID: p.PacketID})
			}
		case *packet.Pubrel:
			s.mu.Lock()
			if h, ok := s.held[p.PacketID]; ok {
				s.delivered(h.n, h.dup)
				delete(s.held, p.PacketID)
			}
			s.mu.Unlock()
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		}
	}
}

// publish sends numbered messages until stop, and returns the numbers
// whose acknowledgement (PUBACK, or PUBCOMP) arrived.
func publishNumbered(addr, id, topic string, qos byte, next *int, stop <-chan struct{}) []int {
	c, _, err := dialRaw(addr, id, true)
	if err != nil {
		return nil
	}
	defer c.conn.Close()
	var acked []int
	for pid := uint16(1); ; pid = pid%1000 + 1 {
		select {
		case <-stop:
			return acked
		default:
		}
		time.Sleep(2 * time.Millisecond) // pacing: about 500 messages/s at most
		n := *next
		if err := c.send(&packet.Publish{Topic: topic, QoS: qos, PacketID: pid, Payload: []byte(strconv.Itoa(n))}); err != nil {
			return acked
		}
		*next = n + 1
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		p, err := c.read()
		if err != nil {
			return acked
		}
		if qos == 2 {
			if _, ok := p.(*packet.Pubrec); !ok {
				return acked
			}
			if c.send(&packet.Pubrel{PacketID: pid}) != nil {
				return acked
			}
			if p, err = c.read(); err != nil {
				return acked
			}
			if _, ok := p.(*packet.Pubcomp); !ok {
				return acked
			}
		} else if pa, ok := p.(*packet.Puback); !ok || pa.ReasonCode >= 0x80 {
			return acked
		}
		acked = append(acked, n)
	}
}

// TestCrashSafety kills ferry with SIGKILL at random moments while QoS 1
// and QoS 2 publishers (about 500 messages/s each) and persistent
// subscribers run, restarts it on the same data directory, and checks that
// every acknowledged message reaches its persistent subscriber (QoS 1: at
// least once; QoS 2: exactly once), in order but for messages resent after
// a restart, and that retained messages and subscriptions survive. Runs
// last 0.5 to 3 s; the subscribers go offline part way through each, so a
// backlog is queued when ferry dies.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	cycles := 20
	if v := os.Getenv("FERRY_CRASH_CYCLES"); v != "" {
		cycles, _ = strconv.Atoi(v)
	}
	s := &crashServer{t: t, bin: ferryBinary(t), dir: filepath.Join(t.TempDir(), "data"), port: freePort(t)}
	addr := "127.0.0.1:" + s.port
	subs := []*subscriber{
		{id: "crash-sub-1", filter: "crash/q1/#", qos: 1, counts: map[int]int{}, held: map[uint16]heldMessage{}},
		{id: "crash-sub-2", filter: "crash/q2/#", qos: 2, counts: map[int]int{}, held: map[uint16]heldMessage{}},
	}
	s.start()
	t.Cleanup(func() { s.kill() })
	// Persistent subscriptions exist before anything is published.
	for _, sub := range subs {
		c, _, err := dialRaw(addr, sub.id, false)
		if err != nil {
			t.Fatal(err)
		}
		c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: sub.filter, QoS: sub.qos}}})
		if p, err := c.read(); err != nil {
			t.Fatalf("no SUBACK: %v", err)
		} else if _, ok := p.(*packet.Suback); !ok {
			t.Fatalf("got %v, want SUBACK", p)
		}
		c.conn.Close()
	}
	// A retained message set once must survive every crash.
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	run(t, pub, "-p", s.port, "-t", "crash/retained", "-m", "survives", "-r", "-q", "1")

	acked := [3][]int{}
	next := [3]int{0, 1, 1}
	rng := rand.New(rand.NewPCG(1, 2))
	for cycle := range cycles {
		if cycle > 0 {
			s.start()
		}
		stop := make(chan struct{})
		runFor := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		var wg sync.WaitGroup
		for _, sub := range subs {
			// Online for the first 20 to 80% of the run, then away.
			online := runFor * time.Duration(20+rng.IntN(60)) / 100
			leave := make(chan struct{})
			wg.Add(1)
			go func() { defer wg.Done(); sub.run(addr, leave) }()
			wg.Go(func() {
				select {
				case <-time.After(online):
				case <-stop:
				}
				close(leave)
			})
		}
		var mu sync.Mutex
		for _, qos := range []byte{1, 2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := publishNumbered(addr, fmt.Sprintf("crash-pub-%d", qos), fmt.Sprintf("crash/q%d/x", qos), qos, &next[qos], stop)
				mu.Lock()
				acked[qos] = append(acked[qos], got...)
				mu.Unlock()
			}()
		}
		time.Sleep(runFor) // the random moment of the crash
		s.kill()
		close(stop)
		wg.Wait()
	}

	// Final run: drain everything that was kept.
	s.start()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, sub := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); sub.run(addr, stop) }()
	}
	missing := func() (int, int) {
		m1, m2 := 0, 0
		for i, sub := range subs {
			sub.mu.Lock()
			for _, n := range acked[i+1] {
				if sub.counts[n] == 0 {
					if i == 0 {
						m1++
					} else {
						m2++
					}
				}
			}
			sub.mu.Unlock()
		}
		return m1, m2
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m1, m2 := missing()
		if m1 == 0 && m2 == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %d crashes: %d acknowledged QoS 1 and %d QoS 2 messages never delivered", cycles, m1, m2)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	// Exactly once for QoS 2: no message, acknowledged to its publisher or
	// not, reached the subscriber twice.
	dups := 0
	for _, c := range subs[1].counts {
		if c > 1 {
			dups++
		}
	}
	t.Logf("%d crash cycles: %d QoS 1 and %d QoS 2 acknowledged messages checked; %d QoS 2 messages delivered more than once",
		cycles, len(acked[1]), len(acked[2]), dups)
	for _, sub := range subs {
		t.Logf("QoS %d: first deliveries out of order: %d resent after a restart (DUP), %d others",
			sub.qos, sub.resentBreaks, sub.unexplainedBreaks)
		if sub.unexplainedBreaks > 0 {
			t.Errorf("QoS %d: %d messages out of order that were not resent, e.g. %v", sub.qos, sub.unexplainedBreaks, sub.examples)
		}
	}
	if dups > 0 {
		t.Errorf("%d QoS 2 messages were delivered more than once", dups)
	}
	if len(acked[1]) == 0 || len(acked[2]) == 0 {
		t.Error("no message was acknowledged: the test checked nothing")
	}

	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	if out := run(t, sub, "-p", s.port, "-t", "crash/retained", "-C", "1", "-W", "5"); strings.TrimSpace(out) != "survives" {
		t.Errorf("retained message after %d crashes: %q", cycles, out)
	}
}
