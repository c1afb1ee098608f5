// Package e2e holds black-box tests: Ferry on 127.0.0.1 driven by clients
// nobody here wrote (mosquitto_pub/sub, Python paho) and by the ferry binary.
package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/node"
	"github.com/ferry-iot/ferry/internal/peertest"
)

// requirePeer returns the path of an external program a test needs, or
// skips or fails the test as peertest decides. The e2e tests keep this
// short name at their many call sites.
func requirePeer(t *testing.T, program, debianPackage string) string {
	t.Helper()
	return peertest.Program(t, program, debianPackage)
}

// requirePython returns Debian's python3 after checking that it can import
// module (from debianPackage).
func requirePython(t *testing.T, module, debianPackage string) string {
	t.Helper()
	return peertest.PythonModule(t, module, debianPackage)
}

// startFerry runs a Ferry node on a free loopback port for the test.
func startFerry(t *testing.T, mutate ...func(*config.Config)) *node.Node {
	t.Helper()
	cfg := config.Default()
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.AMQP.AppAddr = "127.0.0.1:0"
	cfg.AMQP.Addr = "127.0.0.1:0"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.MQTT.SysInterval = 0 // keeps counters and retained counts exact; TestSysTopics turns it on
	// A loaded CI machine may take more than Hono's 1 s to PUBACK a
	// command; no test here is about that timeout.
	cfg.Hono.CommandAckTimeout = config.Duration(10 * time.Second)
	cfg.DataDir = t.TempDir()
	for _, m := range mutate {
		m(&cfg)
	}
	return startNode(t, cfg)
}

// startNode runs a node with cfg until the test ends.
func startNode(t testing.TB, cfg config.Config) *node.Node {
	t.Helper()
	n, err := node.Start(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

// testLogger writes warnings and errors into the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func hostPort(n *node.Node) (host, port string) {
	host, port, _ = net.SplitHostPort(n.MQTTAddr().String())
	return host, port
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSubscriptions waits until the hub holds at least n subscriptions.
func waitSubscriptions(t *testing.T, h *hub.Hub, n int) {
	t.Helper()
	waitFor(t, "subscriptions", func() bool { return h.Stats().Subscripts >= n })
}

// proc is an external client running in the background.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, name, args...)
	p := &proc{cmd: cmd, out: new(syncBuffer), done: make(chan error, 1)}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait(); cancel() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	return p
}

// wait waits for the process to exit and returns its output.
func (p *proc) wait(t *testing.T) string {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("%s: %v\n%s", p.cmd, err, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not finish; output so far:\n%s", p.cmd, p.out.String())
	}
	return p.out.String()
}

// exit waits for the process to exit, whatever its status, and returns its
// output.
func (p *proc) exit(t *testing.T) string {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not finish; output so far:\n%s", p.cmd, p.out.String())
	}
	return p.out.String()
}

// run runs a client to completion and returns its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
