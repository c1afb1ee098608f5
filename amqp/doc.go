// Package amqp is Ferry's AMQP 1.0 engine: connections, sessions and links
// in both roles, a client (Dial) and a server (Listen).
//
// # Basics
//
// A client dials, begins a session and attaches links:
//
//	conn, err := amqp.Dial(ctx, "amqp://127.0.0.1:5672", nil)
//	sess, err := conn.NewSession(ctx, nil)
//	snd, err := sess.NewSender(ctx, "telemetry/tenant", nil)
//	err = snd.Send(ctx, &amqp.Message{Data: [][]byte{payload}}, nil)
//	rcv, err := sess.NewReceiver(ctx, "events", nil)
//	d, err := rcv.Receive(ctx)
//	err = d.Accept(ctx)
//
// A server listens and decides on each link a peer attaches with a
// Handler, which gets a *Sender when the peer receives and a *Receiver
// when it sends, and can refuse with a condition:
//
//	l, err := amqp.Listen(ln, &amqp.ListenerOptions{Handler: amqp.HandlerFunc(
//		func(req *amqp.LinkRequest) error {
//			if req.Address != "q" {
//				return &amqp.Error{Condition: amqp.CondNotFound}
//			}
//			go serve(req.Receiver)
//			return nil
//		})})
//
// A Handler that also implements SessionHandler decides on each session a
// peer begins, before any of its links.
//
// Listeners bound what one peer can hold (Hono and Qpid use similar
// figures): 256 channels (DefaultChannelMax), 1024 link handles per
// session (DefaultHandleMax), 1024 links per connection (DefaultMaxLinks,
// ListenerOptions.MaxLinks) and ListenerOptions.MaxSessions; an attach or
// begin beyond them is refused with amqp:resource-limit-exceeded. They
// announce an idle time-out of 60 s (DefaultIdleTimeout), so a silent
// peer is disconnected. On the client side the same limits make
// NewSession, NewSender and NewReceiver fail with ErrLimit.
//
// Every close we decide (a violation, an expired idle time-out, a panic,
// CloseWithError) carries its condition and is made readable: frames the
// peer sends afterwards are discarded unprocessed, the write side is shut
// once the close is written, and the socket is closed when the peer has
// closed or after CloseLinger (2 s by default).
//
// Connection setup (protocol headers, TLS, SASL ANONYMOUS/PLAIN/EXTERNAL,
// open) is a chain of state functions in handshake.go. Afterwards each
// connection has one reader goroutine, which decodes frames and applies
// them to the session and link state under the connection's mutex, and a
// writer that encodes frames into a buffer flushed by a goroutine that
// exists only while there is something to write.
//
// Flow control follows part 2 of the spec: session windows are replenished
// as transfers arrive; receivers grant credit up to ReceiverOptions.Credit
// minus what is buffered and top it up when half is used; senders block in
// Send while they have no credit, no session window or more than 4 MiB
// queued for the socket. Messages larger than the peer's max-frame-size
// are split over several transfer frames and reassembled up to
// MaxMessageSize. A peer that does not read is disconnected once 64 MiB
// are queued for it.
//
// Errors carry their scope: *ConnError (close), *SessionError (end) and
// *LinkError (detach), each with the peer's condition in RemoteErr.
// Protocol violations by the peer end the narrowest scope that contains
// them, with the matching condition: amqp:connection:framing-error for
// bad or oversized frames, amqp:decode-error, amqp:not-allowed for a
// performative out of place, amqp:session:window-violation,
// amqp:session:unattached-handle, amqp:link:transfer-limit-exceeded.
//
// # Caveats
//
//   - Handler.HandleLink and SessionHandler.HandleSession run on the
//     connection's reader goroutine: they must return quickly and serve
//     the link from another goroutine. A panic in them (or anywhere on
//     the reader) is logged with its stack and closes that connection
//     only, with amqp:internal-error.
//   - A refused session is answered with begin and then end, so a client
//     NewSession may succeed on a session that ends at once: check
//     Session.Err after Done.
//   - An Accept error (file descriptors exhausted) is logged and retried
//     after a back-off of 5 ms doubling to 1 s; the Listener stops only
//     on Close, or when its net.Listener is closed under it.
//   - Send waits for the outcome of unsettled messages. A router that
//     pipelines uses TrySend instead: it never blocks, keeps the order
//     of the calls and reports each outcome to a callback, and OnReady
//     says when a refused TrySend may succeed (credit, window, write
//     room). Callbacks run in order on a goroutine of the connection
//     that exists only while some are waiting.
//   - A message needs session window for all its frames at once, so it may
//     not exceed the peer's incoming window times its max frame size.
//   - Transactions, link recovery (the unsettled map, resume) and
//     symbolic descriptors are not implemented.
//   - A Listener's receivers buffer exactly their credit: a peer that
//     sends without credit is detached with
//     amqp:link:transfer-limit-exceeded. A client's receivers tolerate
//     ClientOvershoot (256) deliveries past their credit, or as many as
//     the credit if that is larger, since RabbitMQ 3.10 overruns small
//     credits by up to about 100 deliveries in flight.
//   - RabbitMQ 3.10 refuses a link to a missing node by ending the
//     session (a *SessionError), and its classic queues sometimes crash on
//     drain; both are RabbitMQ's behaviour, seen in rabbitmq_test.go.
//   - An idle connection gives its read buffer (ReadBufferSize, 16 KiB
//     by default), frame buffer and write buffer back to shared pools
//     after 100 ms of silence, and its receivers' queues let their memory
//     go when they empty; it still keeps its reader goroutine (about 4 KB
//     of stack) and, with an idle time-out (the Listener's default), a
//     timer. BenchmarkIdleConnMemory measures about 9 KB per connection
//     with a session and a link.
package amqp
