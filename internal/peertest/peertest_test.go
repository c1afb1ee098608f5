package peertest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestProgramFound(t *testing.T) {
	// The go command puts its own directory first on PATH for tests.
	if got := Program(t, "go", "golang-go"); got == "" {
		t.Fatal("Program returned an empty path for go")
	}
}

// TestMissing runs Missing in a subtest, with and without the variable,
// and checks that it skipped or failed it. A failed subtest would fail
// this test too, so the failing case runs in a child process.
func TestMissing(t *testing.T) {
	if os.Getenv("PEERTEST_CHILD") == "1" {
		Program(t, "ferry-no-such-peer", "ferry-no-such-package")
		t.Fatal("Program returned for a missing program")
	}
	t.Run("skips", func(t *testing.T) {
		t.Setenv(Env, "")
		var skipped bool
		t.Run("child", func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			Program(t, "ferry-no-such-peer", "ferry-no-such-package")
		})
		if !skipped {
			t.Fatal("a missing peer did not skip the test")
		}
	})
	t.Run("fails", func(t *testing.T) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^TestMissing$")
		cmd.Env = append(os.Environ(), "PEERTEST_CHILD=1", Env+"=1")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "peer missing: ferry-no-such-peer is not installed: apt-get install ferry-no-such-package") {
			t.Fatalf("with %s=1 a missing peer did not fail the test (%v):\n%s", Env, err, out)
		}
	})
}
