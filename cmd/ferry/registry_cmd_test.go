package main

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/registryapi"
	"github.com/ferry-iot/ferry/internal/store/memstore"
)

const cliAdminPassword = "cli-test-pw"

// cliEnv is a registry API server and a way to run ferry commands at it.
type cliEnv struct {
	t   *testing.T
	url string
	reg *registry.Registry
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	for _, k := range []string{"FERRY_API_URL", "FERRY_ADMIN_PASSWORD"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	reg, err := registry.New(memstore.NewRegistry(), &registry.Options{BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registryapi.New(reg, registryapi.Options{AdminPassword: cliAdminPassword}))
	t.Cleanup(srv.Close)
	return &cliEnv{t: t, url: srv.URL, reg: reg}
}

// run runs ferry with args plus the API flags (unless raw) and returns
// stdout, stderr and the error main would print.
func (e *cliEnv) run(stdin string, raw bool, args ...string) (string, string, error) {
	e.t.Helper()
	if !raw {
		args = append(args, "--api-url", e.url, "--admin-password", cliAdminPassword)
	}
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// ok runs a command that must succeed and returns its stdout.
func (e *cliEnv) ok(args ...string) string {
	e.t.Helper()
	out, _, err := e.run("", false, args...)
	if err != nil {
		e.t.Fatalf("ferry %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// fails runs a command that must fail with a message containing want.
func (e *cliEnv) fails(want string, args ...string) {
	e.t.Helper()
	_, _, err := e.run("", false, args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		e.t.Fatalf("ferry %s: error %v; want one containing %q", strings.Join(args, " "), err, want)
	}
}

func TestCLIOperatorFlow(t *testing.T) {
	e := newCLIEnv(t)
	if out := e.ok("tenant", "create", "acme", "--json", `{"ext":{"plan":"gold"}}`); out != "created tenant acme\n" {
		t.Fatalf("tenant create: %q", out)
	}
	if out := e.ok("tenant", "create"); !strings.HasPrefix(out, "created tenant ") {
		t.Fatalf("tenant create with generated id: %q", out)
	}
	if out := e.ok("tenant", "get", "acme"); !strings.Contains(out, `"plan": "gold"`) {
		t.Fatalf("tenant get: %q", out)
	}
	if out := e.ok("tenant", "list"); !strings.Contains(out, "acme") || !strings.HasPrefix(out, "ID") {
		t.Fatalf("tenant list: %q", out)
	}
	e.ok("device", "create", "acme", "gw")
	e.ok("device", "create", "acme", "dev1", "--via", "gw")
	if out := e.ok("device", "create", "acme", "--disabled"); !strings.HasPrefix(out, "created device ") {
		t.Fatalf("device create with generated id: %q", out)
	}
	out := e.ok("device", "list", "acme", "--filter", `{"field":"/id","value":"dev*"}`)
	if !strings.Contains(out, "dev1") || !strings.Contains(out, "gw") || strings.Contains(out, "\ngw ") {
		t.Fatalf("device list: %q", out)
	}
	if out := e.ok("device", "get", "acme", "dev1"); !strings.Contains(out, `"via"`) {
		t.Fatalf("device get: %q", out)
	}

	e.ok("credentials", "set", "acme", "dev1", "--auth-id", "sensor1", "--password", "s3cret")
	e.ok("credentials", "set", "acme", "dev1", "--subject-dn", "CN=dev1,O=Acme")
	if _, err := e.reg.Authenticate(context.Background(), "acme", "sensor1", "s3cret"); err != nil {
		t.Fatalf("password credential kept after adding x509: %v", err)
	}
	// Changing the password replaces that credential only.
	if _, _, err := e.run("n3w-pw\n", false, "credentials", "set", "acme", "dev1", "--auth-id", "sensor1", "--password", "-", "--hash-function", "sha-512"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Authenticate(context.Background(), "acme", "sensor1", "n3w-pw"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if _, err := e.reg.Authenticate(context.Background(), "acme", "sensor1", "s3cret"); err == nil {
		t.Fatal("old password still valid")
	}
	out = e.ok("credentials", "get", "acme", "dev1")
	if !strings.Contains(out, "CN=dev1,O=Acme") || !strings.Contains(out, "sensor1") || strings.Contains(out, "pwd-hash") {
		t.Fatalf("credentials get: %q", out)
	}
	e.ok("credentials", "set", "acme", "dev1", "--subject-dn", "CN=only", "--replace")
	if out := e.ok("credentials", "get", "acme", "dev1"); strings.Contains(out, "sensor1") {
		t.Fatalf("--replace kept other credentials: %q", out)
	}

	e.ok("device", "delete", "acme", "dev1")
	e.ok("tenant", "delete", "acme")
	_, stderr, err := e.run("", false, "tenant", "list", "--filter", `{"field":"/id","value":"acme"}`)
	if err != nil || !strings.Contains(stderr, "no tenants") {
		t.Fatalf("empty list: %v %q", err, stderr)
	}
}

func TestCLIFailures(t *testing.T) {
	e := newCLIEnv(t)
	e.ok("tenant", "create", "acme")
	e.ok("device", "create", "acme", "d1")
	e.ok("device", "create", "acme", "d2")
	e.ok("credentials", "set", "acme", "d1", "--auth-id", "a", "--password", "p")

	// Not found, conflict, rejected.
	e.fails(`get tenant: not found: tenant "nope"`, "tenant", "get", "nope")
	e.fails(`not found: device "x" in tenant "acme"`, "device", "get", "acme", "x")
	e.fails(`not found: tenant "nope"`, "device", "list", "nope")
	e.fails(`not found`, "credentials", "get", "acme", "x")
	e.fails(`not found`, "tenant", "delete", "nope")
	e.fails(`create tenant: conflict: tenant "acme" exists already`, "tenant", "create", "acme")
	e.fails(`conflict: device "d1" exists already`, "device", "create", "acme", "d1")
	e.fails(`set credentials: conflict:`, "credentials", "set", "acme", "d2", "--auth-id", "a", "--password", "p")
	e.fails(`rejected by the API: device: json: unknown field`, "device", "create", "acme", "d3", "--json", `{"colour":"red"}`)
	e.fails(`rejected by the API`, "credentials", "set", "acme", "d1", "--auth-id", "a", "--password", "p", "--hash-function", "md5")

	// Invalid flags and arguments, caught before any request.
	e.fails("invalid flags: give --auth-id and --password, or --subject-dn", "credentials", "set", "acme", "d1")
	e.fails("invalid flags: --subject-dn cannot be combined", "credentials", "set", "acme", "d1", "--subject-dn", "CN=x", "--password", "p")
	e.fails("invalid --page-size 0", "tenant", "list", "--page-size", "0")
	e.fails("invalid --filter", "tenant", "list", "--filter", `{"field":"id"}`)
	e.fails("invalid JSON object", "tenant", "create", "t2", "--json", `[1]`)
	e.fails("invalid tenant id", "tenant", "create", "a/b")
	e.fails("invalid device id", "device", "create", "acme", "a b")
	e.fails("accepts 2 arg(s)", "device", "get", "acme")
	e.fails("unknown flag", "tenant", "list", "--colour")

	// Unauthorized and unreachable.
	_, _, err := e.run("", true, "tenant", "list", "--api-url", e.url, "--admin-password", "wrong")
	if err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("wrong password: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	_, _, err = e.run("", true, "tenant", "list", "--api-url", dead, "--admin-password", "x")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Ferry API at "+dead) {
		t.Fatalf("unreachable: %v", err)
	}
	_, _, err = e.run("", true, "tenant", "list", "--api-url", "ftp://x", "--admin-password", "x")
	if err == nil || !strings.Contains(err.Error(), "invalid --api-url") {
		t.Fatalf("bad url: %v", err)
	}
	_, _, err = e.run("", true, "tenant", "list", "--api-url", e.url, "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no admin password") {
		t.Fatalf("no password: %v", err)
	}
}

func TestCLIPasswordSources(t *testing.T) {
	e := newCLIEnv(t)
	e.ok("tenant", "create", "acme")
	// The environment.
	t.Setenv("FERRY_API_URL", e.url)
	t.Setenv("FERRY_ADMIN_PASSWORD", cliAdminPassword)
	if _, _, err := e.run("", true, "tenant", "get", "acme"); err != nil {
		t.Fatalf("from the environment: %v", err)
	}
	// The password file a node generated in its data directory.
	os.Unsetenv("FERRY_ADMIN_PASSWORD")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, registryapi.AdminPasswordFile), []byte(cliAdminPassword+"\n"), 0o600)
	if _, _, err := e.run("", true, "tenant", "get", "acme", "--data-dir", dir); err != nil {
		t.Fatalf("from the data directory: %v", err)
	}
}
