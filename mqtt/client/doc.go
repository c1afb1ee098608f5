// Package client is an MQTT 3.1.1 and 5 client: it connects over TCP, TLS
// or WebSocket, publishes at QoS 0, 1 and 2, subscribes, keeps the
// connection alive, reconnects and resumes its session, and keeps what is
// in flight in a Store that may outlive the process.
//
// # Basics
//
//	c, err := client.Connect(ctx, client.Options{
//		Server:    "tcp://127.0.0.1:1883",
//		ClientID:  "sensor-1",
//		Reconnect: true,
//		OnMessage: func(m *client.Message) { fmt.Println(m.Topic, string(m.Payload)) },
//		OnConnect: func(c *client.Client, sessionPresent bool) {
//			if !sessionPresent {
//				go c.Subscribe(ctx, &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: "cmd/#", QoS: 1}}})
//			}
//		},
//	})
//	...
//	err = c.Publish(ctx, &client.Message{Topic: "telemetry", Payload: b, QoS: 1})
//	...
//	c.Close()
//
// Connect returns once the server accepted the connection; a refusal is a
// *ConnectError with the CONNACK's reason code. Publish waits for the
// acknowledgement (PUBACK, or PUBCOMP after PUBREC and PUBREL); a failure
// reason code in it is a *ReasonError. PublishAsync returns a Token
// instead, once the message is in flight.
//
// # Flow control
//
// Outgoing QoS 1 and 2 messages take a packet identifier unique among
// those in flight and a place in the inflight window: the server's Receive
// Maximum in MQTT 5 (lowered by Options.Window), Options.Window in 3.1.1.
// When it is full, Publish and PublishAsync wait for a place or for their
// context. Encoded packets wait for the socket in a queue of about 1 MiB,
// past which publishers wait too. In MQTT 5 the client gives the first
// topics it publishes a topic alias each, up to the server's Topic Alias
// Maximum.
//
// Inbound messages go to Options.OnMessage (or Options.Messages), one at a
// time and in order, on a goroutine of the client. A QoS 1 message is
// acknowledged (PUBACK) when OnMessage returned, a QoS 2 message (PUBREC)
// likewise, and its packet identifier is then recorded in the Store until
// the PUBREL, so that the server's resending of it is not delivered again.
// A process that dies while OnMessage runs has acknowledged nothing: a
// persistent session gets the message again. While OnMessage runs the
// client reads on until 64 messages wait; it then stops reading, which
// also holds back acknowledgements of the client's own messages, so
// OnMessage should not wait for a Publish of its own to complete. In MQTT 5
// a server that sends more unacknowledged messages than
// Options.ReceiveMaximum, an unknown topic alias or one above
// Options.TopicAliasMaximum is disconnected with the matching reason code.
//
// # Reconnection and sessions
//
// With Options.Reconnect, a lost connection (network error, keep alive
// timeout, DISCONNECT from the server) is followed by connection attempts
// after waits that double from Options.MinBackoff up to Options.MaxBackoff,
// each drawn at random between half and all of it. Reconnections set Clean
// Start to false and use the client identifier of the first connection
// (the server's assigned one if it chose it). Once connected, the client
// sends again, in their original order and before anything new, every
// outgoing message in flight [MQTT-4.4.0-1]: the PUBLISH with DUP set if
// it had been sent, or the PUBREL of a QoS 2 message whose PUBREC came.
// It does so whatever the CONNACK's Session Present says, since none was
// acknowledged; a server without the session treats them as new (a
// PUBREL it does not know gets PUBCOMP Packet Identifier not found, which
// completes the message's Token with a *ReasonError though the message
// had been handed over). Then OnConnect is called.
//
// When Session Present is false the server has forgotten the client's
// subscriptions and the QoS 2 messages it was sending: the client forgets
// the latter too, and the application must subscribe again, which
// OnConnect is for (it may call Subscribe from a new goroutine, or
// directly). Messages published between connections at QoS 1 and 2 wait
// in flight and go out on the next connection; QoS 0 ones, Subscribe and
// Unsubscribe get ErrNotConnected. A Subscribe waiting for its SUBACK when
// the connection is lost gets ErrConnectionLost.
//
// The Store (Options.Store) holds the messages in flight and the inbound
// QoS 2 identifiers. MemoryStore, the default, carries them across
// reconnections; FileStore across restarts: a process that starts again
// with the same directory, client identifier and Clean Start false sends
// again what the previous one left unacknowledged; package
// mqtt/client/pebblestore does the same in a Pebble database, for many
// messages in flight. Clean Start true empties the Store.
//
// # Goroutines
//
// Each connection has a reader (it handles what the server sends and
// answers acknowledgements), a writer (it owns the socket's write side and
// writes the queued packets in batches) and, with keep alive, a pinger (it
// sends PINGREQ every keep alive interval and closes the connection when
// nothing arrived within Options.PingTimeout). One goroutine per client
// runs OnMessage, one watches the connection and reconnects. Client.mu
// guards the session state; a connection's mutex guards its write queue,
// and is taken after Client.mu. No lock is held while the socket is read or
// written or while a callback runs.
//
// # Caveats
//
//   - No extended authentication (AUTH); a server that asks for it fails
//     the connection.
//   - After a reconnection every message in flight is sent again, even
//     more than the new connection's Receive Maximum.
//   - A store write that fails while acknowledging ends the connection;
//     the session resumes on the next one.
package client
