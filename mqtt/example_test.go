package mqtt_test

import (
	"context"
	"fmt"
	"net"
	"slices"

	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// echoHandler accepts every client, prints what it publishes and sends it
// back to the same client.
type echoHandler struct{ left chan struct{} }

func (echoHandler) Connect(c *mqtt.Conn, p *packet.Connect) mqtt.ConnectResult {
	return mqtt.ConnectResult{Code: packet.Success}
}

func (echoHandler) Open(c *mqtt.Conn) (sessionPresent bool) { return false }

func (echoHandler) Publish(c *mqtt.Conn, p *packet.Publish) packet.ReasonCode {
	fmt.Printf("%s published %q on %s\n", c.ClientID(), p.Payload, p.Topic)
	// p is only valid during the call: copy the payload before queueing.
	c.Send(&packet.Publish{QoS: p.QoS, Topic: p.Topic, Payload: slices.Clone(p.Payload)})
	return packet.Success
}

func (echoHandler) Subscribe(c *mqtt.Conn, p *packet.Subscribe) []packet.ReasonCode {
	return make([]packet.ReasonCode, len(p.Subscriptions)) // nothing to subscribe to
}

func (echoHandler) Unsubscribe(c *mqtt.Conn, p *packet.Unsubscribe) []packet.ReasonCode {
	return make([]packet.ReasonCode, len(p.Filters))
}

func (h echoHandler) Disconnected(c *mqtt.Conn, err error) {
	fmt.Printf("%s left (err: %v)\n", c.ClientID(), err)
	close(h.left)
}

func Example() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	h := echoHandler{left: make(chan struct{})}
	srv := &mqtt.Server{Handler: h}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	// Any MQTT client will do; here paho.golang.
	ctx := context.Background()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	echoed := make(chan string, 1)
	client := paho.NewClient(paho.ClientConfig{Conn: nc, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(r paho.PublishReceived) (bool, error) { echoed <- string(r.Packet.Payload); return true, nil },
	}})
	if _, err := client.Connect(ctx, &paho.Connect{ClientID: "sensor-1", CleanStart: true, KeepAlive: 30}); err != nil {
		panic(err)
	}
	if _, err := client.Publish(ctx, &paho.Publish{Topic: "sensors/temp", QoS: 1, Payload: []byte("21.5")}); err != nil {
		panic(err)
	}
	fmt.Println("echoed:", <-echoed)
	client.Disconnect(&paho.Disconnect{ReasonCode: 0})
	<-h.left
	// Output:
	// sensor-1 published "21.5" on sensors/temp
	// echoed: 21.5
	// sensor-1 left (err: <nil>)
}
