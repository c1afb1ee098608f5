// Package peertest decides what a test does when a real peer it needs (a
// program nobody here wrote: mosquitto_pub, curl, PostgreSQL, Qpid Proton)
// is missing on the machine: it skips, unless FERRY_REQUIRE_PEERS=1, as
// .ci/run sets, and then it fails. CI installs every peer, so a missing
// one there is a broken setup and must not turn into a green run; on a
// developer's machine it is just not installed yet.
//
// It imports only the standard library, so the engines' tests (mqtt,
// amqp) may use it without bringing the rest of internal/ into them
// (internal/lint checks both).
package peertest

import (
	"os"
	"os/exec"
	"testing"
)

// Env is the variable that turns a missing peer from a skip into a
// failure when set to "1".
const Env = "FERRY_REQUIRE_PEERS"

// Python is Debian's interpreter: the python3 first on PATH may be another
// one, without Debian's python3-* packages.
const Python = "/usr/bin/python3"

// Required reports whether missing peers fail tests rather than skip them.
func Required() bool { return os.Getenv(Env) == "1" }

// Missing ends the test because a peer is missing: what says which one and
// how to install it. It fails the test when Required, and skips it
// otherwise.
func Missing(t testing.TB, what string) {
	t.Helper()
	if Required() {
		t.Fatalf("peer missing: %s (%s=1)", what, Env)
	}
	t.Skipf("peer missing: %s; or run ./.ci/run, and set %s=1 to make this a failure", what, Env)
}

// Program returns the path of program, found on PATH, or ends the test
// through Missing, naming the Debian package that provides it.
func Program(t testing.TB, program, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		Missing(t, program+" is not installed: apt-get install "+debianPackage)
	}
	return path
}

// PythonModule returns Python after checking that it can import module, or
// ends the test through Missing, naming the Debian package that provides
// the module.
func PythonModule(t testing.TB, module, debianPackage string) string {
	t.Helper()
	if err := exec.Command(Python, "-c", "import "+module).Run(); err != nil {
		Missing(t, Python+" cannot import "+module+": apt-get install "+debianPackage)
	}
	return Python
}
