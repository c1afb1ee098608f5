package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/config"
)

// TestRegistryThroughServe drives the registry API that `ferry serve`
// mounts on --http-addr with the ferry CLI, using the admin password
// generated into the data directory on first start; devices then log in
// with mosquitto_pub as auth-id@tenant.
func TestRegistryThroughServe(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) { c.Auth = true })
	bin := ferryBinary(t)
	dataDir := n.DataDir()
	pw, err := os.ReadFile(filepath.Join(dataDir, "admin-password"))
	if err != nil {
		t.Fatalf("generated admin password: %v", err)
	}
	api := []string{"--api-url", "http://" + n.HTTPAddr().String(), "--data-dir", dataDir}
	cli := func(args ...string) string { return run(t, bin, append(args, api...)...) }
	cli("tenant", "create", "acme")
	cli("device", "create", "acme", "dev-1")
	cli("credentials", "set", "acme", "dev-1", "--auth-id", "sensor-1", "--password", "s3cret-pw")
	out := cli("credentials", "get", "acme", "dev-1")
	if !strings.Contains(out, "sensor-1") || strings.Contains(out, "pwd-hash") || strings.Contains(out, "s3cret") {
		t.Errorf("credentials get shows:\n%s", out)
	}
	// A wrong admin password is refused with a clear message.
	cmd := append([]string{"tenant", "list"}, "--api-url", "http://"+n.HTTPAddr().String(), "--admin-password", "wrong")
	p := startProc(t, bin, cmd...)
	if out := p.exit(t); p.cmd.ProcessState.Success() || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Errorf("wrong admin password: %s", out)
	}
	if strings.TrimSpace(string(pw)) == "" {
		t.Error("empty generated admin password")
	}
	// The device logs in with what the operator set up; a wrong password
	// and a disabled device are refused with their codes.
	host, port := hostPort(n)
	run(t, pub, "-h", host, "-p", port, "-u", "sensor-1@acme", "-P", "s3cret-pw", "-t", "sensors/temp", "-m", "21.5", "-q", "1")
	cli("device", "create", "acme", "dev-off", "--disabled")
	cli("credentials", "set", "acme", "dev-off", "--auth-id", "off-1", "--password", "off-pw")
	for _, tc := range []struct{ user, pw, want string }{
		{"sensor-1@acme", "wrong", "bad user name or password"}, // 3.1.1 code 4
		{"off-1@acme", "off-pw", "not authorised"},              // 3.1.1 code 5
	} {
		p := startProc(t, pub, "-h", host, "-p", port, "-u", tc.user, "-P", tc.pw, "-t", "telemetry", "-m", "x")
		if out := p.exit(t); p.cmd.ProcessState.Success() || !strings.Contains(strings.ToLower(out), tc.want) {
			t.Errorf("%s: %q, want %q", tc.user, out, tc.want)
		}
	}
}
