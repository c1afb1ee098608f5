package registryapi

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/peertest"
)

// curl runs curl against the server and returns the HTTP status and the
// response headers and body.
func curl(t *testing.T, args ...string) (status string, out string) {
	t.Helper()
	args = append([]string{"-sS", "-i", "-u", AdminUser + ":" + testPassword}, args...)
	b, err := exec.Command("curl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, b)
	}
	out = string(b)
	m := regexp.MustCompile(`^HTTP/[0-9.]+ (\d{3})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("curl %v: no status line in\n%s", args, out)
	}
	return m[1], out
}

func header(out, name string) string {
	m := regexp.MustCompile(`(?mi)^` + name + `: (.*?)\r?$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestCurl drives the API with curl, a client nobody here wrote:
// create, get, update with If-Match, a stale update (412), delete.
func TestCurl(t *testing.T) {
	peertest.Program(t, "curl", "curl")
	srv := newTestServer(t)
	u := srv.URL

	st, out := curl(t, "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"ext":{"k":"v"}}`, u+"/v1/tenants/acme")
	if st != "201" || header(out, "Location") != "/v1/tenants/acme" {
		t.Fatalf("create tenant: %s", out)
	}
	st, out = curl(t, "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"enabled":true}`, u+"/v1/devices/acme/dev1")
	if st != "201" {
		t.Fatalf("create device: %s", out)
	}
	st, out = curl(t, "-X", "PUT", "-H", "Content-Type: application/json",
		"-d", `[{"type":"hashed-password","auth-id":"dev1","secrets":[{"pwd-plain":"curl-secret"}]}]`, u+"/v1/credentials/acme/dev1")
	if st != "204" {
		t.Fatalf("set credentials: %s", out)
	}
	st, out = curl(t, u+"/v1/credentials/acme/dev1")
	if st != "200" || strings.Contains(out, "pwd-hash") || strings.Contains(out, "curl-secret") {
		t.Fatalf("get credentials: %s", out)
	}

	st, out = curl(t, u+"/v1/devices/acme/dev1")
	etag := header(out, "ETag")
	if st != "200" || etag == "" {
		t.Fatalf("get device: %s", out)
	}
	st, out = curl(t, "-X", "PUT", "-H", "Content-Type: application/json", "-H", "If-Match: "+etag,
		"-d", `{"enabled":false}`, u+"/v1/devices/acme/dev1")
	if st != "204" || header(out, "ETag") == "" || header(out, "ETag") == etag {
		t.Fatalf("update with If-Match: %s", out)
	}
	st, out = curl(t, "-X", "PUT", "-H", "Content-Type: application/json", "-H", "If-Match: "+etag,
		"-d", `{"enabled":true}`, u+"/v1/devices/acme/dev1")
	if st != "412" || !strings.Contains(out, `"error"`) {
		t.Fatalf("stale update: %s", out)
	}
	st, out = curl(t, u+"/v1/devices/acme/dev1")
	if st != "200" || !strings.Contains(out, `"enabled":false`) {
		t.Fatalf("after update: %s", out)
	}
	st, out = curl(t, "-X", "DELETE", u+"/v1/devices/acme/dev1")
	if st != "204" {
		t.Fatalf("delete: %s", out)
	}
	if st, out = curl(t, u+"/v1/devices/acme/dev1"); st != "404" {
		t.Fatalf("get after delete: %s", out)
	}
	if st, out = curl(t, "-X", "POST", u+"/v1/tenants/acme"); st != "409" {
		t.Fatalf("duplicate tenant: %s", out)
	}
	if st, out = curl(t, "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"bogus":1}`, u+"/v1/tenants/x"); st != "400" {
		t.Fatalf("invalid tenant: %s", out)
	}
	if st, out = curl(t, "-u", "admin:wrong", u+"/v1/tenants"); st != "401" || header(out, "WWW-Authenticate") == "" {
		t.Fatalf("wrong password: %s", out)
	}
	// The remaining error statuses, each with Hono's error body.
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"unknown tenant", "404", []string{u + "/v1/tenants/nowhere"}},
		{"method not allowed", "405", []string{"-X", "PATCH", u + "/v1/tenants/acme"}},
		{"body too large", "413", []string{"-X", "POST", "-H", "Content-Type: application/json", "-H", "Expect:",
			"--data-binary", "@" + bigBody(t), u + "/v1/tenants/big"}},
		{"registration limit", "403", nil}, // set up below
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.want == "403" {
				// A tenant that allows one device refuses the second.
				if st, out := curl(t, "-X", "POST", "-H", "Content-Type: application/json",
					"-d", `{"registration-limits":{"max-devices":1}}`, u+"/v1/tenants/small"); st != "201" {
					t.Fatalf("limited tenant: %s", out)
				}
				curl(t, "-X", "POST", u+"/v1/devices/small/one")
				args = []string{"-X", "POST", u + "/v1/devices/small/two"}
			}
			st, out := curl(t, args...)
			if st != tc.want || !strings.Contains(out, `"error"`) {
				t.Errorf("status %s, want %s with an error body:\n%s", st, tc.want, out)
			}
		})
	}
}

// bigBody writes a 2 MiB tenant, beyond the API body limit, to a file
// for curl's --data-binary @file.
func bigBody(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "big.json")
	body := `{"ext":{"k":"` + strings.Repeat("x", 2<<20) + `"}}`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
