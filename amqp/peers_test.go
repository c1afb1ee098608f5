package amqp

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/peertest"
)

func TestProtonClient(t *testing.T) {
	python := peertest.PythonModule(t, "proton.utils", "python3-qpid-proton")
	checkGoroutines(t)
	auth := func(_ context.Context, req *AuthRequest) (string, error) {
		if req.Username != "dev@tenant" || req.Password != "secret" {
			return "", errors.New("bad credentials")
		}
		return req.Username, nil
	}
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{Authenticate: auth, MaxFrameSize: 16384,
		IdleTimeout: time.Second, OfferedCapabilities: []Symbol{"ANONYMOUS-RELAY"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/proton_client.py", "amqp://"+l.Addr().String())
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "OK\n" {
		t.Fatalf("proton client: %v\n%s", err, out)
	}
}
