package amqp

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// requirePeer skips a test whose external peer is missing, or fails it
// when FERRY_REQUIRE_PEERS=1 (CI installs every peer).
func requirePeer(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("FERRY_REQUIRE_PEERS") == "1" {
		t.Fatalf("peer missing: %s (FERRY_REQUIRE_PEERS=1)", what)
	}
	t.Skipf("peer missing: %s; install it or set FERRY_REQUIRE_PEERS=1 to make this a failure", what)
}

const python = "/usr/bin/python3"

func haveProton() bool {
	return exec.Command(python, "-c", "import proton.utils").Run() == nil
}

func TestProtonClient(t *testing.T) {
	requirePeer(t, haveProton(), "Debian package python3-qpid-proton (run with "+python+")")
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
