package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/ferry-iot/ferry/mqtt/client"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// A client that subscribes on every connection without session, and
// publishes at QoS 1.
func ExampleConnect() {
	ctx := context.Background()
	c, err := client.Connect(ctx, client.Options{
		Server:        "tcp://127.0.0.1:1883",
		ClientID:      "sensor-1",
		SessionExpiry: time.Hour,
		Reconnect:     true,
		OnMessage:     func(m *client.Message) { fmt.Printf("%s: %s\n", m.Topic, m.Payload) },
		OnConnect: func(c *client.Client, sessionPresent bool) {
			if sessionPresent {
				return
			}
			_, err := c.Subscribe(ctx, &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: "cmd/sensor-1/#", QoS: 1}}})
			if err != nil {
				log.Print(err)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(ctx, &client.Message{Topic: "telemetry/sensor-1", Payload: []byte(`{"t":21.5}`), QoS: 1}); err != nil {
		log.Fatal(err)
	}
}

// Many messages in flight at once: PublishAsync waits only for a place in
// the window.
func ExampleClient_PublishAsync() {
	ctx := context.Background()
	c, err := client.Connect(ctx, client.Options{Server: "tcp://127.0.0.1:1883"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var toks []*client.Token
	for i := range 100 {
		tok, err := c.PublishAsync(ctx, &client.Message{Topic: "batch", Payload: fmt.Append(nil, i), QoS: 2})
		if err != nil {
			log.Fatal(err)
		}
		toks = append(toks, tok)
	}
	for _, tok := range toks {
		if err := tok.Wait(ctx); err != nil {
			log.Print(err)
		}
	}
}

// A persistent session whose unacknowledged messages survive a restart.
func ExampleOpenFileStore() {
	store, err := client.OpenFileStore("/var/lib/sensor/mqtt")
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.Connect(context.Background(), client.Options{
		Server:        "tls://broker.example.com",
		ClientID:      "sensor-1",
		SessionExpiry: 24 * time.Hour,
		Store:         store,
		Reconnect:     true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}

// An MQTT 5 request and its response.
func ExampleClient_Request() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Server: "ws://127.0.0.1:8083/mqtt", RequestResponseInfo: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Request(ctx, "svc/time", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(resp.Payload))
}

// A refusal says what the server said.
func ExampleConnectError() {
	_, err := client.Connect(context.Background(), client.Options{Server: "tcp://127.0.0.1:1883", Username: "u", Password: []byte("wrong")})
	var ce *client.ConnectError
	if errors.As(err, &ce) && ce.Code == packet.BadUserNameOrPassword {
		log.Print("check the credentials")
	}
}
