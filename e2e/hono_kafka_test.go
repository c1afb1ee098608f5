package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/kafkatopics"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// createTopics creates topics on kc, with two partitions each.
func createTopics(t *testing.T, kc *kfake.Cluster, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := kafkatopics.Create(honoCtx(t), cl, topics, kafkatopics.Spec{Partitions: 2, Replication: 1})
	if err == nil {
		err = kafkatopics.Err(res)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// kcatRead reads count records of topic from its beginning with kcat,
// formatted with format (kcat -f).
func kcatRead(t *testing.T, kcat, brokers, topic, format string, count int) string {
	t.Helper()
	return run(t, kcat, "-b", brokers, "-C", "-t", topic, "-o", "beginning", "-c", fmt.Sprint(count), "-e", "-q", "-f", format)
}

// TestHonoKafka: one Ferry node on a Kafka cluster (kfake on loopback)
// with the embedded registry. kcat, as Hono's Kafka applications would,
// reads an MQTT device's telemetry and event with key and headers, sends
// it a command with Hono's headers, and reads the device's response; a
// tenant without topics gets its QoS 1 messages refused, never
// acknowledged.
func TestHonoKafka(t *testing.T) {
	kcat := requirePeer(t, "kcat", "kcat")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	topics := kafkaapi.Topics{}
	createTopics(t, kc, topics.All(tenant)...)
	n := startFerry(t, func(c *config.Config) {
		c.Cluster.Kafka.Brokers = kc.ListenAddrs()
		c.Cluster.Kafka.StartTimeout = config.Duration(20 * time.Second)
	})

	dev, received := pahoGo(t, n.MQTTAddr().String(), "dev-k")
	// An unauthenticated device names tenant and device in its topics.
	subscribe(t, dev, 0, paho.SubscribeOptions{Topic: "command/" + tenant + "/dev-k/req/#", QoS: 1})
	pub := func(topic, payload string) byte {
		r, err := dev.Publish(ctx5(t), &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload),
			Properties: &paho.PublishProperties{ContentType: "application/json"}})
		if err != nil && r == nil {
			t.Fatalf("publish on %s: %v", topic, err)
		}
		return r.ReasonCode
	}
	if rc := pub("telemetry/"+tenant+"/dev-k", `{"temp":21}`); rc != 0 {
		t.Fatalf("telemetry: PUBACK %#x", rc)
	}
	if rc := pub("event/"+tenant+"/dev-k", `{"door":"open"}`); rc != 0 {
		t.Fatalf("event: PUBACK %#x", rc)
	}
	brokersFlag := strings.Join(kc.ListenAddrs(), ",")
	out := kcatRead(t, kcat, brokersFlag, topics.Telemetry(tenant), "%k|%h|%s\n", 1)
	for _, want := range []string{"dev-k|", "device_id=dev-k", "qos=1", "content-type=application/json", "orig_adapter=hono-mqtt", "creation-time=", `|{"temp":21}`} {
		if !strings.Contains(out, want) {
			t.Errorf("kcat telemetry %q lacks %q", out, want)
		}
	}
	// The events: the ttd notification of the command subscription, then
	// the device's own.
	out = kcatRead(t, kcat, brokersFlag, topics.Event(tenant), "%k|%h|%s\n", 2)
	if !strings.Contains(out, "content-type=application/vnd.eclipse-hono-empty-notification") || !strings.Contains(out, "ttd=-1") {
		t.Errorf("kcat events %q: no ttd notification", out)
	}
	if !strings.Contains(out, `|{"door":"open"}`) || strings.Count(out, "ttl=") != 2 {
		t.Errorf("kcat events %q: no event with a ttl", out)
	}

	// A command from kcat; the command consumer group may still be joining,
	// so kcat sends (with a new correlation id each time) until the device
	// has one.
	var cmd *paho.Publish
	var corr string
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; cmd == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the device got no command from Kafka")
		}
		corr = fmt.Sprintf("c-%d", i)
		runIn(t, "on", kcat, "-b", brokersFlag, "-P", "-t", topics.Command(tenant), "-k", "dev-k",
			"-H", "device_id=dev-k", "-H", "subject=set", "-H", "correlation-id="+corr, "-H", "response-required=true")
		select {
		case cmd = <-received:
		case <-time.After(time.Second):
		}
	}
	// command/<tenant>/dev-k/req/<req-id>/set
	segs := strings.Split(cmd.Topic, "/")
	if len(segs) != 6 || segs[5] != "set" || string(cmd.Payload) != "on" {
		t.Fatalf("command on %s: %q", cmd.Topic, cmd.Payload)
	}
	if rc := pub("command/"+tenant+"/dev-k/res/"+segs[4]+"/200", `{"ok":true}`); rc != 0 {
		t.Fatalf("command response: PUBACK %#x", rc)
	}
	out = run(t, kcat, "-b", brokersFlag, "-C", "-t", topics.CommandResponse(tenant), "-o", "beginning", "-e", "-q", "-f", "%k|%h|%s\n")
	found := false
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "status=200") {
			found = true
			for _, want := range []string{"dev-k|", "device_id=dev-k", "tenant_id=" + tenant, "content-type=application/json", `|{"ok":true}`} {
				if !strings.Contains(line, want) {
					t.Errorf("kcat response %q lacks %q", line, want)
				}
			}
		}
	}
	if !found {
		t.Fatalf("no response with status 200 among:\n%s", out)
	}

	// No topics for tenant nobody: refused, not acknowledged.
	if rc := pub("telemetry/nobody/dev-x", "x"); rc < 0x80 {
		t.Fatalf("QoS 1 telemetry for a tenant without topics: PUBACK %#x, want a failure", rc)
	}
	if rc := pub("event/nobody/dev-x", "x"); rc < 0x80 {
		t.Fatalf("an event for a tenant without topics: PUBACK %#x, want a failure", rc)
	}
}

// runIn runs name with stdin and fails the test if it fails.
func runIn(t *testing.T, stdin, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
