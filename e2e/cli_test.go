package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	ferryBin  string
	buildErr  error
)

// ferryBinary builds cmd/ferry once per test run.
func ferryBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		ferryBin = filepath.Join(dir, "ferry")
		out, err := exec.Command("go", "build", "-o", ferryBin, "../cmd/ferry").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building ferry: %v", buildErr)
	}
	return ferryBin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func TestCLIVersion(t *testing.T) {
	out := run(t, ferryBinary(t), "version")
	if !strings.HasPrefix(out, "ferry ") {
		t.Errorf("ferry version printed %q", out)
	}
}

// TestCLIRefusals checks that bad settings stop start-up with a message
// naming the flag or key.
func TestCLIRefusals(t *testing.T) {
	bin := ferryBinary(t)
	badYAML := writeFile(t, "bad.yaml", "mqtt:\n  adress: 127.0.0.1:1\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"non-loopback without auth", []string{"serve", "--mqtt-addr", "0.0.0.0:0"}, nil, "--allow-anonymous"},
		{"non-loopback from env", []string{"serve"}, []string{"FERRY_MQTT_ADDR=0.0.0.0:0"}, "--allow-anonymous"},
		{"bad log level", []string{"serve", "--log-level", "loud"}, nil, "--log-level"},
		{"bad address", []string{"serve", "--mqtt-addr", "nowhere"}, nil, "--mqtt-addr"},
		{"unknown config key", []string{"serve", "--config", badYAML}, nil, "adress"},
		{"missing config file", []string{"serve", "--config", "/nonexistent/ferry.yaml"}, nil, "config file"},
		{"bad env boolean", []string{"serve"}, []string{"FERRY_ALLOW_ANONYMOUS=perhaps"}, "FERRY_ALLOW_ANONYMOUS"},
		{"unknown flag", []string{"serve", "--mqtt-adr", "x"}, nil, "mqtt-adr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("ferry %v succeeded; output:\n%s", tt.args, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output does not name %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestCLIServe starts the binary the way a user does, uses it with
// mosquitto_pub, and stops it with SIGTERM and SIGINT.
func TestCLIServe(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	bin := ferryBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			port := freePort(t)
			dataDir := filepath.Join(t.TempDir(), "data")
			// The address comes from the environment twin of --mqtt-addr.
			cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--amqp-app-addr", "127.0.0.1:0", "--amqp-addr", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "FERRY_MQTT_ADDR=127.0.0.1:"+port)
			out := new(syncBuffer)
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() { cmd.Process.Kill(); <-done; done <- nil })

			waitFor(t, "ferry listening", func() bool {
				c, err := net.Dial("tcp", "127.0.0.1:"+port)
				if err == nil {
					c.Close()
				}
				return err == nil
			})
			run(t, pub, "-p", port, "-t", "cli/test", "-m", "hi", "-q", "2")
			if _, err := os.Stat(dataDir); err != nil {
				t.Errorf("data directory not created: %v", err)
			}
			start := time.Now()
			cmd.Process.Signal(sig)
			select {
			case err := <-done:
				done <- err
				if err != nil {
					t.Errorf("ferry exited with %v after %v:\n%s", err, sig, out.String())
				}
			case <-time.After(6 * time.Second):
				t.Fatalf("ferry still running 6 s after %v:\n%s", sig, out.String())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("shutdown took %v, want under 5 s", d)
			}
		})
	}
}
