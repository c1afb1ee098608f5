// Package mqtt is an MQTT 3.1.1 and 5 server library: it accepts
// connections, runs the protocol (handshake, keep alive, QoS 1 and 2 flows,
// flow control, topic aliases, session takeover) and hands the application
// the events through a Handler. It knows nothing of subscriptions or
// routing, so it serves as well for a broker as for a gateway or an adapter.
//
// # Basics
//
// A Server's zero value works once Handler is set:
//
//	srv := &mqtt.Server{Handler: h}
//	go srv.Serve(listener)
//	...
//	srv.Shutdown(ctx)
//
// Handler.Connect accepts or refuses a CONNECT, Handler.Open attaches the
// session (after any older connection of the same session key was closed
// and reported), Handler.Publish, Subscribe and Unsubscribe answer the
// client's requests, and Handler.Disconnected reports the end. Conn.Send
// queues outbound messages from any goroutine; the library numbers QoS 1
// and 2 messages, keeps them in the inflight window and handles their
// acknowledgements. After the end, Conn.Unacked gives the messages to
// redeliver in a persistent session.
//
// # Goroutines
//
//   - Serve runs the accept loop on the caller's goroutine and starts one
//     reader goroutine per connection (Conn.serve). The Server owns them:
//     Shutdown waits until every one has ended.
//   - The reader goroutine owns the protocol state: the read buffer, the
//     topic aliases and the fields set during the handshake. Every Handler method is called on
//     it, so a connection's events are serial. It exits when the socket
//     fails or is closed, after waiting for the writer; when the server
//     ended the connection it first lingers (see Disconnects). In race builds
//     (owner_race.go) the reader-only entry points check that they run on
//     it.
//   - A reader that waited Server.IdlePark for a byte parks its connection
//     (park.go; Linux, plain TCP): it registers the socket with the
//     Server's poller and exits. The poller goroutine (one per Server,
//     started by the first park, stopped by Shutdown or by an epoll_wait
//     failure, after which connections no longer park) starts a new reader
//     when bytes or a hang-up arrive, when its keep-alive sweep finds the
//     keep alive expired, or when the connection is closed; the reader role,
//     with the buffered bytes, passes to it. Parked connections have no
//     goroutine at all.
//   - The writer goroutine (Conn.writeLoop) exists only while the outbound
//     queue is non-empty: the first packet queued into an empty queue
//     starts it, it writes the queue in batches (one Write per batch) and
//     exits when the queue drained. An idle connection therefore has no
//     goroutine once parked and no write buffer. It is owned by its connection: the
//     reader waits for it (Conn.wg) before calling Disconnected, and a
//     stuck write ends after WriteTimeout.
//   - Any goroutine may call Conn.Send, Close, Value and the accessors.
//
// # Locks
//
// Server.mu guards the listener set, the connection set and the session
// map. Conn.mu guards the connection state (handshake, open, closing,
// closed), the outbound queue of encoded bytes, the writer flag, the
// inflight window and the pending messages, the inbound QoS 2 ids awaiting
// PUBREL and the acknowledgements of asynchronously handled PUBLISHes:
// everything that Send (any goroutine), the acknowledgements (reader),
// AsyncPublishHandler completions (any goroutine) and the writer share. Lock
// order: Server.mu before Conn.mu; no lock is held while a Handler method
// runs or while the socket is read or written.
//
// # Buffers
//
// The reader borrows a 512-byte buffer from a pool while it reads. A read
// that fills it (a busy connection) switches to a pooled 16 KiB buffer,
// given back once the data is consumed and reads get small again; a packet
// bigger than the buffer borrows one of its size for the duration of its
// handling. A parked connection gives its buffer back, and the CONNECT
// packet is dropped after the handshake, so an idle connection holds the
// Conn (512 B), the socket and the handler's state: ferry bench idle
// measures 3.5 KB of process memory per idle connection in all.
// The outbound queue borrows a pooled buffer while it is non-empty. Inbound
// PUBLISH structs are pooled too, which is why Handler.Publish may not keep
// its packet.
//
// # Backpressure
//
// Send never blocks. Up to MaxQueued messages wait (for the inflight window
// or for the socket); beyond, Send returns ErrQueueFull and the caller
// decides (drop a QoS 0 message, close a slow client...). What the reader
// queues in answer to the client (acknowledgements, PINGRESP, SUBACK...) is
// not counted there but bounded in bytes: once 256 KiB in all wait for the
// socket, the reader stops reading until the writer got them out, so TCP
// slows down a client that sends faster than it reads. A socket that
// accepts no data for WriteTimeout closes the connection.
//
// # Disconnects
//
// When the server ends a connection (a protocol error, the keep alive, a
// takeover, Conn.Close or CloseWithReason, Shutdown, a refusing CONNACK),
// it handles nothing more the client sends, writes what was queued and the
// v5 DISCONNECT (or the CONNACK), shuts down the socket's write side, and
// reads and discards until the client closes its side, for at most
// DisconnectLinger (2 s), before it closes the socket. Closing at once with
// the client's bytes unread would make the kernel reset the connection,
// and a client that is still writing would often see the reset before the
// reason. Disconnected is called when the write side is shut, before the
// linger; Shutdown waits for the lingers too.
//
// # Caveats
//
//   - No outbound topic aliases, no retransmission within a connection
//     (MQTT 5 and 3.1.1 allow it only on reconnection: see Unacked).
//   - Unacked includes the QoS 2 messages whose PUBREC arrived: they are
//     returned as PUBLISH with Dup set, not as PUBREL.
//   - A client that keeps writing and never closes holds its connection
//     (and the reader goroutine) for DisconnectLinger after it was
//     disconnected.
package mqtt
