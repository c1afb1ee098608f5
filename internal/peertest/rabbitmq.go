package peertest

import (
	"bytes"
	"context"
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
)

// RabbitMQ starts a private RabbitMQ node (Debian package rabbitmq-server)
// with the AMQP 1.0 plugin on loopback, with its own node name, ports and
// data directory, until the test ends, and returns its AMQP address with
// user guest's credentials.
func RabbitMQ(t testing.TB) string {
	t.Helper()
	return startRabbit(t)
}

// The scripts under /usr/lib run as the calling user; the /usr/sbin
// wrappers would switch to the rabbitmq user and its home directory.
const (
	rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	rabbitCtl    = "/usr/lib/rabbitmq/bin/rabbitmqctl"
)

// rabbitPort finds a port p such that p and p+20000 (RabbitMQ's
// distribution port) are both free.
func rabbitPort(t testing.TB) int {
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
func startRabbit(t testing.TB) string {
	if _, err := os.Stat(rabbitServer); err != nil {
		Missing(t, rabbitServer+" is not installed: apt-get install rabbitmq-server")
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
