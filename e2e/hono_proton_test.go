package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
)

// These tests put Qpid Proton (Debian's python3-qpid-proton, the reference
// AMQP 1.0 implementation) in the application's seat: testdata/hono_app.py
// receives telemetry and events and sends commands on Hono's northbound
// addresses, devices are mosquitto_pub and the paho device.

// requireProton returns Debian's python3 after checking it has Proton.
func requireProton(t *testing.T) string {
	t.Helper()
	return requirePython(t, "proton", "python3-qpid-proton")
}

// protonMsg is one JSON line of hono_app.py: a received message or a
// command response.
type protonMsg struct {
	Body              string            `json:"body"`
	BodyType          string            `json:"body_type"`
	ContentType       *string           `json:"content_type"`
	CreationTime      *int64            `json:"creation_time"` // ms since the epoch
	Durable           bool              `json:"durable"`
	CorrelationID     any               `json:"correlation_id"`
	CorrelationIDType string            `json:"correlation_id_type"`
	AppProps          map[string]any    `json:"application_properties"`
	AppPropTypes      map[string]string `json:"application_property_types"`
	SentCorrelationID any               `json:"sent_correlation_id"`
}

// protonApp runs hono_app.py against n's application listener in the
// background.
func protonApp(t *testing.T, py string, n *node.Node, args ...string) *proc {
	t.Helper()
	return startProc(t, py, append([]string{"testdata/hono_app.py", n.AppAddr().String()}, args...)...)
}

// protonReceiver starts a Proton receiver on addr for count messages (in
// group when not empty) and waits until its link is attached.
func protonReceiver(t *testing.T, py string, n *node.Node, addr string, count int, group string) *proc {
	t.Helper()
	args := []string{"receive", addr, fmt.Sprint(count)}
	if group != "" {
		args = append(args, group)
	}
	p := protonApp(t, py, n, args...)
	waitFor(t, "the Proton receiver on "+addr+" "+group, func() bool {
		return strings.Contains(p.out.String(), "attached\n")
	})
	return p
}

// protonLines decodes the JSON lines of hono_app.py's output.
func protonLines(t *testing.T, out string) []protonMsg {
	t.Helper()
	var msgs []protonMsg
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m protonMsg
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// checkDeviceMessage checks what Hono puts on every message of an MQTT
// device: a data section, content-type, a recent creation-time, and the
// application properties device_id, orig_adapter, orig_address and qos (an
// AMQP int).
func checkDeviceMessage(t *testing.T, m protonMsg, body, contentType, origAddress string, qos int) {
	t.Helper()
	if m.Body != body || m.BodyType != "bytes" {
		t.Errorf("body %q (%s), want %q in a data section", m.Body, m.BodyType, body)
	}
	if m.ContentType == nil || *m.ContentType != contentType {
		t.Errorf("%q: content-type %v, want %s", body, m.ContentType, contentType)
	}
	if m.CreationTime == nil || time.Since(time.UnixMilli(*m.CreationTime)).Abs() > time.Minute {
		t.Errorf("%q: creation-time %v, want about now", body, m.CreationTime)
	}
	want := map[string]any{"device_id": "dev-1", "orig_adapter": "hono-mqtt", "orig_address": origAddress, "qos": float64(qos)}
	for k, v := range want {
		if m.AppProps[k] != v {
			t.Errorf("%q: application property %s = %v, want %v (all: %v)", body, k, m.AppProps[k], v, m.AppProps)
		}
	}
	if m.AppPropTypes["qos"] != "int32" {
		t.Errorf("%q: qos is an AMQP %s, want int", body, m.AppPropTypes["qos"])
	}
}

// TestHonoProtonTelemetry: a Proton receiver on telemetry/<tenant> gets
// QoS 0 and QoS 1 telemetry of an MQTT device with Hono's properties.
func TestHonoProtonTelemetry(t *testing.T) {
	py := requireProton(t)
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t)
	host, port := hostPort(n)
	// QoS 1 telemetry without a consumer is refused: attach first.
	app := protonReceiver(t, py, n, "telemetry/"+tenant, 2, "")

	topic := "telemetry/" + tenant + "/dev-1"
	run(t, pub, "-h", host, "-p", port, "-q", "0", "-t", topic, "-m", `{"qos":0}`)
	run(t, pub, "-h", host, "-p", port, "-q", "1", "-t", topic+"/?content-type=application%2Fjson", "-m", `{"qos":1}`)
	msgs := protonLines(t, app.wait(t))
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2:\n%s", len(msgs), app.out.String())
	}
	byQoS := map[string]protonMsg{}
	for _, m := range msgs {
		byQoS[m.Body] = m
	}
	checkDeviceMessage(t, byQoS[`{"qos":0}`], `{"qos":0}`, "application/octet-stream", topic, 0)
	// orig_address is the topic as published, property bag and all (Hono
	// takes the PUBLISH packet's topic name).
	checkDeviceMessage(t, byQoS[`{"qos":1}`], `{"qos":1}`, "application/json", topic+"/?content-type=application%2Fjson", 1)
	if byQoS[`{"qos":0}`].Durable {
		t.Error("QoS 0 telemetry is durable")
	}
}

// TestHonoProtonEventGroups: two Proton receivers on event/<tenant> with
// different subscription-name link properties each get every event, in
// order, durable.
func TestHonoProtonEventGroups(t *testing.T) {
	py := requireProton(t)
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t)
	host, port := hostPort(n)
	const events = 5
	g1 := protonReceiver(t, py, n, "event/"+tenant, events, "g1")
	g2 := protonReceiver(t, py, n, "event/"+tenant, events, "g2")

	for i := range events {
		run(t, pub, "-h", host, "-p", port, "-q", "1", "-t", "event/"+tenant+"/dev-1", "-m", fmt.Sprintf("ev-%d", i))
	}
	for _, g := range []*proc{g1, g2} {
		msgs := protonLines(t, g.wait(t))
		if len(msgs) != events {
			t.Fatalf("%s: got %d events, want %d:\n%s", g.cmd.Args, len(msgs), events, g.out.String())
		}
		for i, m := range msgs {
			checkDeviceMessage(t, m, fmt.Sprintf("ev-%d", i), "application/octet-stream", "event/"+tenant+"/dev-1", 1)
			if !m.Durable {
				t.Errorf("%s: event %q is not durable", g.cmd.Args, m.Body)
			}
		}
	}
}

// TestHonoProtonCommand: a Proton application sends request/response
// commands to the paho device and gets the outcome and the response; a
// command for a device nobody subscribed for is released.
func TestHonoProtonCommand(t *testing.T) {
	py := requireProton(t)
	paho := requirePython(t, "paho.mqtt.client", "python3-paho-mqtt")
	n := startFerry(t)
	host, port := hostPort(n)
	dev := startProc(t, paho, "testdata/hono_device.py", host, port, tenant, "dev-1")
	waitFor(t, "the device's command subscription", func() bool { return strings.Contains(dev.out.String(), "ready 1") })

	command := func(t *testing.T, device, name, body string, opts ...string) (outcome string, resp []protonMsg) {
		t.Helper()
		args := append([]string{"testdata/hono_app.py", n.AppAddr().String(), "command", tenant, device, name, body}, opts...)
		out := run(t, py, args...)
		outcome, _, _ = strings.Cut(out, "\n")
		return outcome, protonLines(t, out)
	}
	for _, tc := range []struct {
		name string
		opts []string
	}{
		{"correlation-id, data section", nil},
		// Hono: the response correlates to the message-id when the
		// request has no correlation-id; a payload may also be an
		// amqp-value string (what Proton sends for a str body).
		{"message-id, amqp-value string", []string{"--id", "message-id", "--body", "value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outcome, resp := command(t, "dev-1", "setBrightness", "80", tc.opts...)
			if outcome != "ACCEPTED" || len(resp) != 1 {
				t.Fatalf("outcome %q, %d responses; want ACCEPTED and one response", outcome, len(resp))
			}
			r := resp[0]
			if r.Body != "done:setBrightness:80" || r.BodyType != "bytes" {
				t.Errorf("response body %q (%s), want done:setBrightness:80 in a data section", r.Body, r.BodyType)
			}
			if r.CorrelationID != r.SentCorrelationID || r.CorrelationIDType != "str" {
				t.Errorf("response correlation-id %v (%s), want the request's %v", r.CorrelationID, r.CorrelationIDType, r.SentCorrelationID)
			}
			if r.AppProps["status"] != float64(200) || r.AppPropTypes["status"] != "int32" {
				t.Errorf("status %v (AMQP %s), want the int 200", r.AppProps["status"], r.AppPropTypes["status"])
			}
			if r.AppProps["device_id"] != "dev-1" || r.AppProps["tenant_id"] != tenant {
				t.Errorf("application properties %v, want device_id dev-1, tenant_id %s", r.AppProps, tenant)
			}
			if r.CreationTime == nil {
				t.Error("a response without creation-time")
			}
		})
	}

	if outcome, resp := command(t, "dev-2", "setBrightness", "1"); outcome != "RELEASED" || len(resp) != 0 {
		t.Fatalf("a command for a device without subscription: %q, %d responses; want RELEASED", outcome, len(resp))
	}
}

// TestHonoProtonPlain: Proton logs in with SASL PLAIN over plain TCP as a
// configured application, receives its tenant's telemetry, and is refused
// other tenants and a wrong password.
func TestHonoProtonPlain(t *testing.T) {
	py := requireProton(t)
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	hash, err := bcrypt.GenerateFromPassword([]byte("secret-a"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	n := startFerry(t, func(c *config.Config) {
		c.Applications = []config.Application{{Name: "app-a", PasswordHash: string(hash), Tenants: []string{"A"}}}
	})
	host, port := hostPort(n)
	url := func(user, password string) string {
		return "amqp://" + user + ":" + password + "@" + n.AppAddr().String()
	}

	app := startProc(t, py, "testdata/hono_app.py", url("app-a", "secret-a"), "receive", "telemetry/A", "1")
	waitFor(t, "the Proton receiver on telemetry/A", func() bool { return strings.Contains(app.out.String(), "attached\n") })
	run(t, pub, "-h", host, "-p", port, "-q", "1", "-t", "telemetry/A/dev-1", "-m", "for-a")
	if msgs := protonLines(t, app.wait(t)); len(msgs) != 1 || msgs[0].Body != "for-a" || msgs[0].AppProps["device_id"] != "dev-1" {
		t.Fatalf("telemetry/A: %+v", msgs)
	}

	other := startProc(t, py, "testdata/hono_app.py", url("app-a", "secret-a"), "receive", "telemetry/B", "1")
	if out := other.exit(t); !strings.Contains(out, "link refused amqp:unauthorized-access") || other.cmd.ProcessState.ExitCode() != 4 {
		t.Errorf("telemetry/B for an application of tenant A: want a detach with amqp:unauthorized-access (exit 4), got exit %d:\n%s", other.cmd.ProcessState.ExitCode(), out)
	}
	wrong := startProc(t, py, "testdata/hono_app.py", url("app-a", "wrong"), "receive", "telemetry/A", "1")
	if out := wrong.exit(t); !strings.Contains(out, "connection failed amqp:unauthorized-access") || wrong.cmd.ProcessState.ExitCode() != 5 {
		t.Errorf("a wrong password: want a SASL failure (exit 5), got exit %d:\n%s", wrong.cmd.ProcessState.ExitCode(), out)
	}
}
