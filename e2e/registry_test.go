package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegistryThroughServe drives the registry API that `ferry serve`
// mounts on --http-addr with the ferry CLI, using the admin password
// generated into the data directory on first start.
func TestRegistryThroughServe(t *testing.T) {
	n := startFerry(t)
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
	// The device registry answers authentication for the adapters.
	if _, err := n.Registry().Authenticate(t.Context(), "acme", "sensor-1", "s3cret-pw"); err != nil {
		t.Errorf("Authenticate with the password set through the CLI: %v", err)
	}
}
