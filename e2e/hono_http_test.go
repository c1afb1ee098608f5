package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/registry"
)

// curlStatus runs curl and returns the status code, the response headers
// and body (curl -i), failing the test if curl itself fails.
func curlStatus(t *testing.T, curl string, args ...string) (int, string) {
	t.Helper()
	out := run(t, curl, append([]string{"-s", "-i", "--max-time", "20"}, args...)...)
	var code int
	if _, err := fmt.Sscanf(out, "HTTP/1.1 %d", &code); err != nil {
		t.Fatalf("curl %v: no status in %q", args, out)
	}
	return code, out
}

// TestHonoHTTPAdapter drives Hono's HTTP adapter with curl: telemetry and
// events with Basic auth, a gateway, Hono's status codes with problem
// bodies, and a command piggybacked on a request with hono-ttd whose
// response is uploaded to /command/res.
func TestHonoHTTPAdapter(t *testing.T) {
	curl := requirePeer(t, "curl", "curl")
	n := startFerry(t, func(c *config.Config) { c.Auth = true; c.AdminPassword = "admin-pw" })
	base := "http://" + n.HTTPAddr().String()
	ctx := honoCtx(t)
	provision(t, n, "acme", "dev-h", "h1", "pw-h", true)
	provision(t, n, "acme", "gw-h", "gwh", "pw-gw", true)
	if _, _, err := n.Registry().CreateDevice(ctx, "acme", "dev-hc", registry.Device{Enabled: true, Via: []string{"gw-h"}}); err != nil {
		t.Fatal(err)
	}
	s := dialApp(t, n, goamqp.SASLTypePlain("admin", "admin-pw"))
	tele := receiver(t, s, "telemetry/acme", "", 10)
	events := receiver(t, s, "event/acme", "", 10)

	code, out := curlStatus(t, curl, "-u", "h1@acme:pw-h", "-H", "content-type: application/json", "-d", `{"temp":5}`, base+"/telemetry")
	if code != 202 {
		t.Fatalf("telemetry: %d\n%s", code, out)
	}
	m := receiveAMQP(t, tele)
	if string(m.GetData()) != `{"temp":5}` || m.ApplicationProperties["device_id"] != "dev-h" || m.ApplicationProperties["orig_adapter"] != "hono-http" ||
		*m.Properties.ContentType != "application/json" {
		t.Fatalf("telemetry %q %v %+v", m.GetData(), m.ApplicationProperties, m.Properties)
	}
	if code, out = curlStatus(t, curl, "-u", "h1@acme:pw-h", "-H", "hono-ttl: 60", "-d", "ev", base+"/event"); code != 202 {
		t.Fatalf("event: %d\n%s", code, out)
	}
	if m := receiveAMQP(t, events); string(m.GetData()) != "ev" || m.Header == nil || !m.Header.Durable {
		t.Fatalf("event %q %+v", m.GetData(), m.Header)
	}
	// A gateway for a device in its via, and one that is not.
	if code, out = curlStatus(t, curl, "-u", "gwh@acme:pw-gw", "-X", "PUT", "-d", "g", base+"/telemetry//dev-hc"); code != 202 {
		t.Fatalf("gateway telemetry: %d\n%s", code, out)
	}
	if m := receiveAMQP(t, tele); m.ApplicationProperties["device_id"] != "dev-hc" {
		t.Fatalf("gateway telemetry for %v", m.ApplicationProperties["device_id"])
	}

	// Refusals with Hono's codes and a problem body.
	for _, tc := range []struct {
		name string
		want int
		args []string
	}{
		{"wrong password", 401, []string{"-u", "h1@acme:nope", "-d", "x", base + "/telemetry"}},
		{"no credentials", 401, []string{"-d", "x", base + "/telemetry"}},
		{"gateway for a stranger", 403, []string{"-u", "gwh@acme:pw-gw", "-X", "PUT", "-d", "x", base + "/telemetry//dev-h"}},
		{"another tenant", 403, []string{"-u", "h1@acme:pw-h", "-X", "PUT", "-d", "x", base + "/telemetry/globex/dev-h"}},
		{"empty body without content type", 400, []string{"-u", "h1@acme:pw-h", "-X", "POST", base + "/telemetry"}},
		{"bad qos-level", 400, []string{"-u", "h1@acme:pw-h", "-H", "qos-level: 2", "-d", "x", base + "/telemetry"}},
		{"too large", 413, []string{"-u", "h1@acme:pw-h", "-d", strings.Repeat("x", 3000), base + "/telemetry"}},
		{"wrong method", 405, []string{"-u", "h1@acme:pw-h", "-X", "PUT", "-d", "x", base + "/telemetry"}},
		{"unknown path", 404, []string{"-u", "h1@acme:pw-h", "-d", "x", base + "/telemetry/a/b/c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := curlStatus(t, curl, tc.args...)
			if code != tc.want || !strings.Contains(out, "application/problem+json") || !strings.Contains(out, `"detail"`) {
				t.Fatalf("%d, want %d with a problem body:\n%s", code, tc.want, out)
			}
		})
	}
	// QoS 1 telemetry for a tenant nobody receives: 503.
	provision(t, n, "globex", "dev-g", "g1", "pw-g", true)
	if code, out = curlStatus(t, curl, "-u", "g1@globex:pw-g", "-H", "qos-level: 1", "-d", "x", base+"/telemetry"); code != 503 {
		t.Fatalf("QoS 1 telemetry without a consumer: %d\n%s", code, out)
	}

	// A command piggybacked on a request that waits (hono-ttd).
	responses := receiver(t, s, "command_response/acme/app-h", "", 10)
	snd, err := s.NewSender(ctx, "command/acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := startProc(t, curl, "-s", "-i", "--max-time", "20", "-u", "h1@acme:pw-h", "-H", "hono-ttd: 10",
		"-H", "content-type: application/vnd.eclipse-hono-empty-notification", "-X", "POST", base+"/telemetry")
	notif := receiveAMQP(t, tele) // the request itself, with its ttd
	if notif.ApplicationProperties["ttd"] != int32(10) {
		t.Fatalf("waiting request: ttd %v", notif.ApplicationProperties["ttd"])
	}
	cmd := goamqp.NewMessage([]byte("on"))
	cmd.Properties = &goamqp.MessageProperties{To: ptr("command/acme/dev-h"), Subject: ptr("switch"),
		ReplyTo: ptr("command_response/acme/app-h"), CorrelationID: "c-http"}
	if err := outcome(ctx, snd, cmd); err != nil {
		t.Fatalf("command to the waiting HTTP device: %v", err)
	}
	got := wait.wait(t)
	reqID := regexp.MustCompile(`(?i)hono-cmd-req-id: (\S+)`).FindStringSubmatch(got)
	if !strings.HasPrefix(got, "HTTP/1.1 200") || !regexp.MustCompile(`(?i)hono-command: switch`).MatchString(got) || reqID == nil || !strings.HasSuffix(got, "on") {
		t.Fatalf("piggybacked command:\n%s", got)
	}
	if code, out = curlStatus(t, curl, "-u", "h1@acme:pw-h", "-H", "content-type: text/plain", "-d", "done",
		base+"/command/res/"+reqID[1]+"?hono-cmd-status=200"); code != 202 {
		t.Fatalf("command response: %d\n%s", code, out)
	}
	r := receiveAMQP(t, responses)
	if string(r.GetData()) != "done" || r.Properties.CorrelationID != "c-http" || r.ApplicationProperties["status"] != int32(200) {
		t.Fatalf("response %q %+v %v", r.GetData(), r.Properties, r.ApplicationProperties)
	}
	// No command within the ttd: 202 once it passed.
	start := time.Now()
	if code, out = curlStatus(t, curl, "-u", "h1@acme:pw-h", "-H", "hono-ttd: 1", "-d", "x", base+"/telemetry"); code != 202 || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("waiting without a command: %d after %v\n%s", code, time.Since(start), out)
	}
	receiveAMQP(t, tele)
	// Bad response uploads.
	if code, _ = curlStatus(t, curl, "-u", "h1@acme:pw-h", "-d", "x", base+"/command/res/"+reqID[1]); code != http.StatusBadRequest {
		t.Fatalf("response without hono-cmd-status: %d", code)
	}
	var body map[string]any
	_, out = curlStatus(t, curl, "-u", "h1@acme:pw-h", "-d", "x", base+"/command/res/zz?hono-cmd-status=200")
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &body); err != nil || body["status"] != float64(400) {
		t.Fatalf("malformed request id: %s", out)
	}
}
