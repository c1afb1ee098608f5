package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/eclipse/paho.golang/paho"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// TestHonoCommandsAcrossNodes: three nodes on one Kafka cluster (kfake).
// An application on node a sends a command over the northbound AMQP API
// to a device connected to node c, and gets the outcome and the response;
// a command produced by kcat to hono.command.<tenant>, consumed by node b
// (the only member of the command consumer group), reaches the device on
// node c too, and its response is in hono.command_response.<tenant>.
func TestHonoCommandsAcrossNodes(t *testing.T) {
	kcat := requirePeer(t, "kcat", "kcat")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	topics := kafkaapi.Topics{}
	createTopics(t, kc, topics.All(tenant)...)
	start := func(id string, consume bool) *node.Node {
		return startFerry(t, func(c *config.Config) {
			c.Cluster.Kafka.Brokers = kc.ListenAddrs()
			c.Cluster.Kafka.StartTimeout = config.Duration(20 * time.Second)
			c.Cluster.NodeID = id
			c.Hono.Kafka.ConsumeCommands = consume
			c.HTTP.Addr = ""
		})
	}
	a, _, c := start("a", false), start("b", true), start("c", false)

	dev, received := pahoGo(t, c.MQTTAddr().String(), "dev-n")
	subscribe(t, dev, 0, paho.SubscribeOptions{Topic: "command/" + tenant + "/dev-n/req/#", QoS: 1})
	respond := func(p *paho.Publish, body string) {
		t.Helper()
		reqID := strings.Split(p.Topic, "/")[4]
		publish(t, dev, &paho.Publish{Topic: "command/" + tenant + "/dev-n/res/" + reqID + "/200", QoS: 1, Payload: []byte(body)})
	}

	ctx := honoCtx(t)
	app := dialApp(t, a, nil)
	responses := receiver(t, app, "command_response/"+tenant+"/app-n", "", 10)
	snd, err := app.NewSender(ctx, "command/"+tenant, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Node a learns of the subscription on c through Kafka: until then the
	// command is released.
	send := func(corr string) chan error {
		m := goamqp.NewMessage([]byte("ping"))
		m.Properties = &goamqp.MessageProperties{To: ptr("command/" + tenant + "/dev-n"), Subject: ptr("ping"),
			ReplyTo: ptr("command_response/" + tenant + "/app-n"), CorrelationID: corr}
		done := make(chan error, 1)
		go func() { done <- outcome(ctx, snd, m) }()
		return done
	}
	var p *paho.Publish
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; p == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("node a's command never reached the device on node c")
		}
		done := send(fmt.Sprint("amqp-", i))
		select {
		case p = <-received:
			respond(p, "pong")
			if err := <-done; err != nil {
				t.Fatalf("outcome of the delivered command: %v", err)
			}
		case err := <-done:
			if !errors.Is(err, errReleased) {
				t.Fatalf("outcome before the directory knew the device: %v, want released", err)
			}
		}
	}
	r := receiveAMQP(t, responses)
	if r.ApplicationProperties["status"] != int32(200) || string(r.GetData()) != "pong" || !strings.HasPrefix(fmt.Sprint(r.Properties.CorrelationID), "amqp-") {
		t.Fatalf("response on node a: %+v %v %q", r.Properties, r.ApplicationProperties, r.GetData())
	}

	// From Kafka, through node b.
	var corr string
	p = nil
	deadline = time.Now().Add(30 * time.Second)
	for i := 0; p == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no command from Kafka reached the device on node c")
		}
		corr = fmt.Sprint("kafka-", i)
		runIn(t, "on", kcat, "-b", strings.Join(kc.ListenAddrs(), ","), "-P", "-t", topics.Command(tenant), "-k", "dev-n",
			"-H", "device_id=dev-n", "-H", "subject=set", "-H", "correlation-id="+corr, "-H", "response-required=true")
		select {
		case p = <-received:
		case <-time.After(time.Second):
		}
	}
	respond(p, "done")
	waitFor(t, "the response of the Kafka command", func() bool {
		out := run(t, kcat, "-b", strings.Join(kc.ListenAddrs(), ","), "-C", "-t", topics.CommandResponse(tenant), "-o", "beginning",
			"-e", "-q", "-f", "%h|%s\n")
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "status=200") && strings.Contains(line, "device_id=dev-n") && strings.HasSuffix(line, "|done") {
				return true
			}
		}
		return false
	})
}
