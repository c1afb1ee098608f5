package amqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
	"github.com/ferry-iot/ferry/internal/peertest"
)

// These tests run Ferry's client role against RabbitMQ with the AMQP 1.0
// plugin (Debian package rabbitmq-server), started per test on loopback
// with its own node name, ports and data directory.

// The scripts under /usr/lib run as the calling user; the /usr/sbin
// wrappers would switch to the rabbitmq user and its home directory.
const (
	rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	rabbitCtl    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
)

// rabbitPort finds a port p such that p and p+20000 (RabbitMQ's
// distribution port) are both free.
func rabbitPort(t *testing.T) int {
	t.Helper()
	for p := 20000 + os.Getpid()%10000; p < 45000; p += 7 {
		a, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", ":"+strconv.Itoa(p+20000))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p
	}
	t.Fatal("no free port pair for RabbitMQ")
	return 0
}

// startRabbit starts a private RabbitMQ node and returns its AMQP address.
func startRabbit(t *testing.T) string {
	if _, err := os.Stat(rabbitServer); err != nil {
		peertest.Missing(t, rabbitServer+" is not installed: apt-get install rabbitmq-server")
	}
	dir := t.TempDir()
	port := rabbitPort(t)
	node := fmt.Sprintf("ferry%d@localhost", port)
	conf := filepath.Join(dir, "rabbitmq.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(
		"listeners.tcp.1 = 127.0.0.1:%d\nloopback_users = none\nmanagement.tcp.port = 0\n", port)), 0o600); err != nil {
		t.Fatal(err)
	}
	plugins := filepath.Join(dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[rabbitmq_amqp1_0].\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"HOME="+dir, // the Erlang cookie lives here
		"ERL_CRASH_DUMP="+filepath.Join(dir, "erl_crash.dump"),
		"RABBITMQ_NODENAME="+node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_CONFIG_FILE="+conf,
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
		"RABBITMQ_LOGS=-",
	)
	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, rabbitServer)
	srv.Env = env
	srv.Dir = dir
	var out lockedBuffer // written by exec's copying goroutine
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	ctl := func(ctx context.Context, args ...string) error {
		cmd := exec.CommandContext(ctx, rabbitCtl, append([]string{"-n", node}, args...)...)
		cmd.Env = env
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("rabbitmqctl %v: %w\n%s", args, err, b)
		}
		return nil
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		_ = ctl(sctx, "stop")
		select {
		case <-exited:
		case <-sctx.Done():
		}
		cancel()
		<-exited
	})
	// "wait" blocks until the node has written its pid file and booted:
	// readiness without sleeping.
	wctx, wcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer wcancel()
	for {
		err := ctl(wctx, "wait", filepath.Join(dir, "pid"), "--timeout", "90")
		if err == nil {
			break
		}
		// The server creates the pid file before it writes the pid: a wait
		// that reads it in between fails at once. Ask again.
		if !strings.Contains(err.Error(), "garbage_in_pid_file") || wctx.Err() != nil {
			t.Fatalf("%v\nserver output:\n%s", err, out.String())
		}
	}
	return "amqp://guest:guest@127.0.0.1:" + strconv.Itoa(port)
}

func TestRabbitMQ(t *testing.T) {
	addr := startRabbit(t)
	checkGoroutines(t)
	if os.Getenv("FERRY_TRACE") != "" {
		traceIncoming = func(ch uint16, fb frame.Body) {
			if tr, ok := fb.(*frame.Transfer); ok {
				t.Logf("<- transfer handle %d id %v more %v settled %v len %d", tr.Handle, deref(tr.DeliveryID), tr.More, tr.Settled, len(tr.Payload))
				return
			}
			if fl, ok := fb.(*frame.Flow); ok && fl.Handle != nil {
				t.Logf("<- flow handle %d delivery-count %v credit %v available %v drain %v", *fl.Handle, deref(fl.DeliveryCount), deref(fl.LinkCredit), deref(fl.Available), fl.Drain)
				return
			}
			t.Logf("<- %d %T %+v", ch, fb, fb)
		}
		traceOutgoing = func(ch uint16, fb frame.Body) {
			fl := fb.(*frame.Flow)
			if fl.Handle != nil {
				t.Logf("-> flow handle %d delivery-count %v credit %v drain %v", *fl.Handle, deref(fl.DeliveryCount), deref(fl.LinkCredit), fl.Drain)
			}
		}
		defer func() { traceIncoming, traceOutgoing = nil, nil }()
	}
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, &ConnOptions{MaxFrameSize: 4096, IdleTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := mustSession(t, c)
	const q = "/queue/ferry-interop"
	snd, err := s.NewSender(ctx, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("rabbit"), 200_000) // 1.2 MB over 4 KiB frames
	for i := range 10 {
		m := &Message{Properties: &frame.Properties{MessageID: uint64(i)},
			ApplicationProperties: map[string]any{"i": int64(i)}, Data: [][]byte{[]byte(fmt.Sprint(i))}}
		if i == 9 {
			m.Data = [][]byte{big}
		}
		if err := snd.Send(ctx, m, &SendOptions{Settled: i%2 == 1}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	rcv, err := s.NewReceiver(ctx, q, &ReceiverOptions{Credit: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		d, err := rcv.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d.Message.ApplicationProperties["i"] != int64(i) {
			t.Fatalf("message %d: %v", i, d.Message.ApplicationProperties)
		}
		if i == 9 && !bytes.Equal(d.Message.Data[0], big) {
			t.Fatal("large message mismatch")
		}
		if err := d.Accept(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// No drain here: RabbitMQ 3.10's classic queues crash on it now and
	// then (function_clause in rabbit_classic_queue:handle_event
	// send_drained), ending the session with amqp:internal-error.
	if err := rcv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	// A node that does not exist: RabbitMQ 3.10 refuses by ending the
	// session with amqp:not-found (not with a detach).
	s2 := mustSession(t, c)
	_, err = s2.NewSender(ctx, "/exchange/ferry-no-such-exchange/key", nil)
	var se *SessionError
	if !errors.As(err, &se) || se.RemoteErr == nil || se.RemoteErr.Condition != frame.CondNotFound {
		t.Fatalf("attach to a missing exchange: %v", err)
	}
	// The connection survives.
	if _, err := mustSession(t, c).NewReceiver(ctx, q, nil); err != nil {
		t.Fatal(err)
	}
}

func deref(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
