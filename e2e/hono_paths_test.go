package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/internal/config"
)

// TestHonoOneCommandPath sends the same command to four devices on four
// protocols (MQTT, AMQP, HTTP and CoAP waiting with hono-ttd) and gets each
// one's response on the same reply address.
func TestHonoOneCommandPath(t *testing.T) {
	curl := requirePeer(t, "curl", "curl")
	coap := requirePeer(t, "coap-client-openssl", "libcoap3-bin")
	n := startFerry(t, func(c *config.Config) { c.CoAP.Addr = "127.0.0.1:0" })
	ctx := honoCtx(t)
	app := dialApp(t, n, nil)
	responses := receiver(t, app, "command_response/"+tenant+"/app-p", "", 10)
	events := receiver(t, app, "event/"+tenant, "", 50)
	tele := receiver(t, app, "telemetry/"+tenant, "", 10)
	snd, err := app.NewSender(ctx, "command/"+tenant, nil)
	if err != nil {
		t.Fatal(err)
	}
	// send sends the command; its outcome (nil: accepted) comes on the
	// channel, since an MQTT device answers before it acknowledges.
	send := func(device string) chan error {
		m := goamqp.NewMessage([]byte("ping"))
		m.Properties = &goamqp.MessageProperties{To: ptr("command/" + tenant + "/" + device), Subject: ptr("ping"),
			ReplyTo: ptr("command_response/" + tenant + "/app-p"), CorrelationID: "corr-" + device}
		done := make(chan error, 1)
		go func() { done <- outcome(ctx, snd, m) }()
		return done
	}
	accepted := func(device string, done chan error) {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatalf("command to %s: %v", device, err)
		}
	}
	expect := func(device string) {
		t.Helper()
		r := receiveAMQP(t, responses)
		if r.Properties.CorrelationID != "corr-"+device || r.ApplicationProperties["status"] != int32(200) || string(r.GetData()) != "pong" {
			t.Fatalf("response for %s: %+v %v %q", device, r.Properties, r.ApplicationProperties, r.GetData())
		}
	}
	waitSubscribed := func(device string) {
		t.Helper()
		waitFor(t, device+"'s command subscription", func() bool {
			sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			m, err := events.Receive(sctx, nil)
			if err != nil {
				return false
			}
			_ = events.AcceptMessage(ctx, m)
			return m.ApplicationProperties["device_id"] == device && m.ApplicationProperties["ttd"] == int32(-1)
		})
	}

	// MQTT.
	cl, _, _, received := pahoConnect(t, n.MQTTAddr().String(), &paho.Connect{ClientID: "path-mqtt", CleanStart: true, KeepAlive: 30})
	t.Cleanup(func() { cl.Disconnect(&paho.Disconnect{}) })
	subscribe(t, cl, 0, paho.SubscribeOptions{Topic: "command/" + tenant + "/dev-m/req/#", QoS: 1})
	waitSubscribed("dev-m")
	done := send("dev-m")
	p := <-received
	reqID := strings.Split(p.Topic, "/")[4]
	publish(t, cl, &paho.Publish{Topic: "command/" + tenant + "/dev-m/res/" + reqID + "/200", QoS: 1, Payload: []byte("pong")})
	expect("dev-m")
	accepted("dev-m", done)

	// AMQP.
	dc, err := goamqp.Dial(ctx, "amqp://"+n.AMQPAddr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close() })
	ds, err := dc.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := ds.NewReceiver(ctx, "command/"+tenant+"/dev-a", &goamqp.ReceiverOptions{Credit: 5})
	if err != nil {
		t.Fatal(err)
	}
	dsnd, err := ds.NewSender(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed("dev-a")
	done = send("dev-a")
	c, err := cmds.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = cmds.AcceptMessage(ctx, c)
	resp := goamqp.NewMessage([]byte("pong"))
	resp.Properties = &goamqp.MessageProperties{To: c.Properties.ReplyTo, CorrelationID: c.Properties.CorrelationID}
	resp.ApplicationProperties = map[string]any{"status": int32(200), "device_id": "dev-a"}
	if err := outcome(ctx, dsnd, resp); err != nil {
		t.Fatal(err)
	}
	expect("dev-a")
	accepted("dev-a", done)

	// HTTP, waiting for a command.
	base := "http://" + n.HTTPAddr().String()
	wait := startProc(t, curl, "-s", "-i", "--max-time", "20", "-X", "PUT", "-H", "hono-ttd: 10",
		"-H", "content-type: application/vnd.eclipse-hono-empty-notification", base+"/telemetry/"+tenant+"/dev-h")
	receiveAMQP(t, tele) // the waiting request went downstream: the device waits
	done = send("dev-h")
	out := wait.wait(t)
	accepted("dev-h", done)
	id := regexp.MustCompile(`(?i)hono-cmd-req-id: (\S+)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("HTTP device got no command:\n%s", out)
	}
	if code, out := curlStatus(t, curl, "-X", "PUT", "-d", "pong", base+"/command/res/"+tenant+"/dev-h/"+id[1]+"?hono-cmd-status=200"); code != 202 {
		t.Fatalf("HTTP response upload: %d\n%s", code, out)
	}
	expect("dev-h")

	// CoAP, waiting for a command with an empty notification; libcoap
	// prints the response's options at verbosity 7.
	coapBase := "coap://" + n.CoAPAddr()
	cw := startProc(t, coap, "-m", "put", "-B", "20", "-v", "7", coapBase+"/t/"+tenant+"/dev-co?hono-ttd=10&empty")
	receiveAMQP(t, tele) // the waiting request went downstream: the device waits
	done = send("dev-co")
	out = cw.wait(t)
	accepted("dev-co", done)
	var loc []string
	for _, m := range regexp.MustCompile(`Location-Path:([^,\] ]*)`).FindAllStringSubmatch(out, -1) {
		loc = append(loc, m[1])
	}
	if len(loc) != 4 || loc[0] != "cr" || !strings.Contains(out, "hono-command=ping") {
		t.Fatalf("CoAP device got no command:\n%s", out)
	}
	if out := strings.TrimSpace(run(t, coap, "-m", "put", "-B", "10", "-e", "pong", coapBase+"/"+strings.Join(loc, "/")+"?hono-cmd-status=200")); out != "" {
		t.Fatalf("CoAP response upload: %q", out)
	}
	expect("dev-co")
}
