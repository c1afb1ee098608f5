package e2e

import (
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/eclipse/paho.golang/paho"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/node"
	"github.com/ferry-iot/ferry/internal/northbound/amqpapi"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// kafkaAMQPCluster is a kfake cluster with the tenant's Hono topics (two
// partitions each).
func kafkaAMQPCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	createTopics(t, kc, kafkaapi.Topics{}.All(tenant)...)
	return kc
}

func startKafkaNode(t *testing.T, kc *kfake.Cluster, id string) *node.Node {
	t.Helper()
	return startFerry(t, func(c *config.Config) {
		c.Cluster.Kafka.Brokers = kc.ListenAddrs()
		c.Cluster.Kafka.StartTimeout = config.Duration(20 * time.Second)
		c.Cluster.NodeID = id
		c.HTTP.Addr = ""
	})
}

// waitAMQPGroup waits until the consumer group of a telemetry or event
// link has committed its start on both partitions of topic: a new group
// starts at the end of the topic, so only what is produced from then on
// reaches it.
func waitAMQPGroup(t *testing.T, kc *kfake.Cluster, group, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = group // no topics: all of the group's
		resp, err := req.RequestWith(honoCtx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		// The answer may hold the offsets twice: per group (v8+) and flat.
		started := map[int32]bool{}
		for _, g := range resp.Groups {
			for _, gt := range g.Topics {
				for _, p := range gt.Partitions {
					if gt.Topic == topic && p.Offset >= 0 {
						started[p.Partition] = true
					}
				}
			}
		}
		for _, rt := range resp.Topics {
			for _, p := range rt.Partitions {
				if rt.Topic == topic && p.Offset >= 0 {
					started[p.Partition] = true
				}
			}
		}
		if len(started) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: %d of 2 partitions of %s started", group, len(started), topic)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// receiveBody receives on r, accepting, until a message with body comes:
// others (the device's notifications) may come first.
func receiveBody(t *testing.T, r *goamqp.Receiver, body string) *goamqp.Message {
	t.Helper()
	for range 5 {
		if m := receiveAMQP(t, r); string(m.GetData()) == body {
			return m
		}
	}
	t.Fatalf("no message %s on %s", body, r.Address())
	return nil
}

// kafkaAMQPRoundTrip: a device on dn publishes telemetry and an event;
// an application on an receives both over the northbound AMQP API.
func kafkaAMQPRoundTrip(t *testing.T, kc *kfake.Cluster, an, dn *node.Node, device string) {
	topics := kafkaapi.Topics{}
	app := dialApp(t, an, nil)
	tel := receiver(t, app, "telemetry/"+tenant, "", 10)
	ev := receiver(t, app, "event/"+tenant, "app", 10)
	waitAMQPGroup(t, kc, amqpapi.KafkaGroup(hono.Telemetry, tenant, ""), topics.Telemetry(tenant))
	waitAMQPGroup(t, kc, amqpapi.KafkaGroup(hono.Event, tenant, "app"), topics.Event(tenant))

	dev, _ := pahoGo(t, dn.MQTTAddr().String(), device)
	for _, ep := range []string{"telemetry", "event"} {
		r := publish(t, dev, &paho.Publish{Topic: ep + "/" + tenant + "/" + device, QoS: 1, Payload: []byte(`{"from":"` + ep + `"}`),
			Properties: &paho.PublishProperties{ContentType: "application/json"}})
		if r.ReasonCode != 0 {
			t.Fatalf("%s: PUBACK %#x", ep, r.ReasonCode)
		}
	}

	m := receiveBody(t, tel, `{"from":"telemetry"}`)
	if m.Properties == nil || m.Properties.ContentType == nil || *m.Properties.ContentType != "application/json" || m.Properties.CreationTime == nil {
		t.Errorf("telemetry properties %+v: want content-type application/json and a creation-time", m.Properties)
	}
	want := map[string]any{hono.PropDeviceID: device, hono.PropQoS: int32(1), hono.PropOrigAdapter: "hono-mqtt"}
	for k, v := range want {
		if got := m.ApplicationProperties[k]; got != v {
			t.Errorf("telemetry application property %s = %#v, want %#v", k, got, v)
		}
	}
	m = receiveBody(t, ev, `{"from":"event"}`)
	if m.Header == nil || !m.Header.Durable || m.Header.TTL <= 0 {
		t.Errorf("event header %+v: want durable with a ttl", m.Header)
	}
	if got := m.ApplicationProperties[hono.PropDeviceID]; got != device {
		t.Errorf("event device_id %#v, want %s", got, device)
	}
}

// TestHonoKafkaAMQP: with Hono's Kafka messaging, the northbound AMQP API
// reads the tenant's Kafka topics: an MQTT device's telemetry and event
// reach an application on telemetry/<tenant> and event/<tenant>.
func TestHonoKafkaAMQP(t *testing.T) {
	kc := kafkaAMQPCluster(t)
	n := startKafkaNode(t, kc, "a")
	kafkaAMQPRoundTrip(t, kc, n, n, "dev-ka")
}

// TestHonoKafkaAMQPAcrossNodes: two nodes on one Kafka cluster; the
// device on node b, the application on node a, which gets the device's
// telemetry and event from Kafka, not from its own hub.
func TestHonoKafkaAMQPAcrossNodes(t *testing.T) {
	kc := kafkaAMQPCluster(t)
	a, b := startKafkaNode(t, kc, "a"), startKafkaNode(t, kc, "b")
	kafkaAMQPRoundTrip(t, kc, a, b, "dev-kb")
}
