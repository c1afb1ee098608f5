package amqp_test

import (
	"context"
	"fmt"
	"net"

	"github.com/ferry-iot/ferry/amqp"
)

// A Listener whose Handler accepts links to "greetings" and prints what
// arrives, and a client that sends one message to it.
func Example() {
	ctx := context.Background()
	got := make(chan string)
	handler := amqp.HandlerFunc(func(req *amqp.LinkRequest) error {
		if req.Address != "greetings" || req.Receiver == nil {
			return &amqp.Error{Condition: amqp.CondNotFound, Description: "no such node"}
		}
		go func() {
			d, err := req.Receiver.Receive(ctx)
			if err != nil {
				return
			}
			_ = d.Accept(ctx)
			got <- string(d.Message.Data[0])
		}()
		return nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	l, err := amqp.Listen(ln, &amqp.ListenerOptions{Handler: handler})
	if err != nil {
		panic(err)
	}
	defer l.Close()

	conn, err := amqp.Dial(ctx, "amqp://"+l.Addr().String(), nil)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		panic(err)
	}
	if _, err := sess.NewSender(ctx, "elsewhere", nil); err != nil {
		fmt.Println("refused:", err)
	}
	snd, err := sess.NewSender(ctx, "greetings", nil)
	if err != nil {
		panic(err)
	}
	if err := snd.Send(ctx, &amqp.Message{Data: [][]byte{[]byte("hello")}}, nil); err != nil {
		panic(err)
	}
	fmt.Println("received:", <-got)
	// Output:
	// refused: amqp: link detached by peer: amqp:not-found: no such node
	// received: hello
}
