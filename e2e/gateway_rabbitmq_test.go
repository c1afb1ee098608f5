package e2e

import (
	"strconv"
	"syscall"
	"testing"

	goamqp "github.com/Azure/go-amqp"
	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/gateway"
	"github.com/ferry-iot/ferry/internal/peertest"
)

// TestGatewayRabbitMQ: MQTT clients on RabbitMQ 3 with its AMQP 1.0
// plugin through the gateway (addresses /topic/<routing key>): QoS 0, 1
// and 2 to a subscriber through the gateway with a wildcard filter and to
// a native AMQP receiver on RabbitMQ; RabbitMQ has no last-will service,
// so the gateway publishes the will of a killed client itself.
func TestGatewayRabbitMQ(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	network := peertest.RabbitMQ(t)
	g := startGateway(t, network, func(c *config.Config) { c.Gateway.Addresses = string(gateway.AddressesRabbitMQ) })
	host, port := gatewayHostPort(g)

	native, err := goamqp.Dial(honoCtx(t), network, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { native.Close() })
	ns, err := native.NewSession(honoCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	nr, err := ns.NewReceiver(honoCtx(t), "/topic/plant.#", &goamqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	via, received := pahoGo(t, g.Addr().String(), "rabbit-sub")
	// The gateway answers SUBACK once RabbitMQ attached the links, which
	// it does once their queues are bound.
	subscribe(t, via, 0, paho.SubscribeOptions{Topic: "plant/+/temp", QoS: 2}, paho.SubscribeOptions{Topic: "plant/will", QoS: 2})
	for q := range 3 {
		run(t, pub, "-h", host, "-p", port, "-t", "plant/line"+strconv.Itoa(q)+"/temp", "-m", strconv.Itoa(20+q), "-q", strconv.Itoa(q))
	}
	for q := range 3 {
		m := receiveAMQP(t, nr)
		if string(m.GetData()) != strconv.Itoa(20+q) || m.Properties.To == nil || *m.Properties.To != "plant/line"+strconv.Itoa(q)+"/temp" || m.Annotations["x-opt-mqtt-qos"] != int32(q) {
			t.Fatalf("native AMQP receiver got %q to %v %v, want QoS %d message %d", m.GetData(), m.Properties.To, m.Annotations, q, 20+q)
		}
	}
	// The publishers' connections may still be closing: only the
	// subscriber's may be left before the doomed client comes, so that
	// the count of two below is its.
	waitFor(t, "the publishers gone", func() bool { return g.Gateway().Stats().Connections == 1 })
	doomed := startProc(t, sub, "-h", host, "-p", port, "-i", "rabbit-doomed", "-t", "nothing", "--will-topic", "plant/will", "--will-payload", "lost", "--will-qos", "1")
	waitFor(t, "the doomed client", func() bool { return g.Gateway().Stats().Connections == 2 })
	if err := doomed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for q := range 3 {
		m := nextPublish(t, received)
		if m.Topic != "plant/line"+strconv.Itoa(q)+"/temp" || string(m.Payload) != strconv.Itoa(20+q) || m.QoS != byte(q) {
			t.Fatalf("the subscriber through the gateway got %s %q QoS %d, want message %d at QoS %d", m.Topic, m.Payload, m.QoS, 20+q, q)
		}
	}
	if m := nextPublish(t, received); m.Topic != "plant/will" || string(m.Payload) != "lost" {
		t.Fatalf("got %s %q, want the will", m.Topic, m.Payload)
	}
}
