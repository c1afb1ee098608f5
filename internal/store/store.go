package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every backend. Match them with errors.Is: backends wrap
// them with context.
var (
	// ErrNotFound: the record asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt: a stored record could not be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrInvalid: an argument is out of range (an empty client id, a
	// QoS above 2, an unknown inflight state...).
	ErrInvalid = errors.New("store: invalid argument")
)

// Store is the broker state of one node: everything a persistent MQTT
// session, a retained message or a pending will needs to survive a restart.
// Implementations are safe for concurrent use.
type Store interface {
	SessionStore
	SubscriptionStore
	InflightStore
	QueueStore
	RetainedStore
	WillStore
}

// Session is the record of one session, without the state kept beside it
// (subscriptions, inflight, queue, will), which have their own methods.
type Session struct {
	// ClientID identifies the session inside its tenant. Not empty.
	ClientID string
	// ExpiryInterval is how long the session outlives its connection:
	// 0 ends it with the connection, NeverExpire keeps it forever.
	ExpiryInterval time.Duration
	// Created is when the session was first created; Updated when this
	// record was last written. Both are set by the caller.
	Created, Updated time.Time
	// Disconnected is when the last connection of the session ended; zero
	// while a connection is attached. After a crash it is zero for the
	// sessions that were connected: the caller treats them as disconnected
	// at startup.
	Disconnected time.Time
}

// NeverExpire is the Session.ExpiryInterval of a session that never
// expires (MQTT 5 session expiry interval 0xFFFFFFFF).
const NeverExpire time.Duration = 1<<63 - 1

// Subscription is one subscription of a session, with the MQTT 5 options.
// A session has at most one subscription per Filter.
type Subscription struct {
	// Filter is the topic filter as subscribed, $share/<group>/ included.
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	// RetainHandling is 0 (send retained on subscribe), 1 (only when the
	// subscription is new) or 2 (never).
	RetainHandling byte
	// ID is the MQTT 5 subscription identifier; 0 means none.
	ID uint32
}

// OutboundState is the state of a QoS 1 or 2 message sent to a session's
// client and not yet fully acknowledged.
type OutboundState uint8

const (
	// OutboundPublished: PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC
	// (QoS 2). On resume the message is sent again with DUP set.
	OutboundPublished OutboundState = 1
	// OutboundReleased: PUBREC received and PUBREL sent, waiting for
	// PUBCOMP. On resume PUBREL is sent again. The message is no longer
	// needed and may be stored empty.
	OutboundReleased OutboundState = 2
)

// Outbound is one message in flight from the broker to a session's client.
type Outbound struct {
	PacketID uint16
	State    OutboundState
	// Message is the message as delivered: QoS and Retain are the delivered
	// ones and SubscriptionIDs those of the matching subscriptions.
	Message Message
}

// Will is a session's will message. The store keeps it until the caller
// deletes it (after publishing it, or when the session resumes in time).
type Will struct {
	Message Message
	// Delay is the MQTT 5 will delay interval.
	Delay time.Duration
	// Deadline is when the will is due: zero while the client is connected,
	// set by the caller when the connection ends without DISCONNECT.
	Deadline time.Time
}

// QueueEntry is one message of a session's offline queue.
type QueueEntry struct {
	// Seq orders the queue; see QueueStore.
	Seq     uint64
	Message Message
}

// QueueInfo describes a session's offline queue.
type QueueInfo struct {
	// Len is the number of entries; Bytes the sum of their encoded sizes,
	// for byte limits.
	Len   int
	Bytes int64
	// First and Last are the sequence numbers of the oldest and newest
	// entries; both are 0 when the queue is empty.
	First, Last uint64
}

// SessionStore keeps session records.
type SessionStore interface {
	// PutSession creates or replaces the session s.ClientID of tenant. It
	// touches nothing else of the session.
	PutSession(ctx context.Context, tenant string, s Session) error

	// GetSession returns the session, or ErrNotFound.
	GetSession(ctx context.Context, tenant, clientID string) (Session, error)

	// DeleteSession removes the session and, atomically with it, all its
	// subscriptions, inflight state in both directions, offline queue and
	// will. Deleting a missing session is not an error.
	DeleteSession(ctx context.Context, tenant, clientID string) error

	// Sessions calls fn for every session of every tenant, each exactly
	// once, in no particular order, until fn returns an error, which
	// Sessions returns. It is meant for startup; writes made during the
	// scan may or may not be seen.
	Sessions(ctx context.Context, fn func(tenant string, s Session) error) error
}

// SubscriptionStore keeps the subscriptions of sessions.
type SubscriptionStore interface {
	// PutSubscription creates or replaces the session's subscription with
	// filter sub.Filter.
	PutSubscription(ctx context.Context, tenant, clientID string, sub Subscription) error

	// DeleteSubscription removes the session's subscription to filter. It
	// returns ErrNotFound when there was none (MQTT's "no subscription
	// existed"), having changed nothing.
	DeleteSubscription(ctx context.Context, tenant, clientID, filter string) error

	// Subscriptions returns the session's subscriptions ordered by filter
	// (byte order); none is an empty result, not an error.
	Subscriptions(ctx context.Context, tenant, clientID string) ([]Subscription, error)
}

// InflightStore keeps the QoS 1 and 2 state of sessions in both directions.
type InflightStore interface {
	// PutOutbound records an outbound message under its packet id,
	// replacing the previous record with that id. A replaced record keeps
	// its place in the order returned by Outbound (so the PUBREC update of
	// a QoS 2 message does not move it); a new one goes last.
	PutOutbound(ctx context.Context, tenant, clientID string, o Outbound) error

	// DeleteOutbound removes the outbound record of packetID (on PUBACK or
	// PUBCOMP). Deleting a missing record is not an error.
	DeleteOutbound(ctx context.Context, tenant, clientID string, packetID uint16) error

	// Outbound returns the session's outbound records in the order they
	// were first put, which is the order to resend them on resume.
	Outbound(ctx context.Context, tenant, clientID string) ([]Outbound, error)

	// PutInbound records that the QoS 2 message with packetID was received
	// from the session's client and PUBREC sent: until DeleteInbound (on
	// PUBREL), a PUBLISH with the same packet id is a duplicate.
	PutInbound(ctx context.Context, tenant, clientID string, packetID uint16) error

	// DeleteInbound forgets packetID. Deleting a missing id is not an error.
	DeleteInbound(ctx context.Context, tenant, clientID string, packetID uint16) error

	// Inbound returns the packet ids awaiting PUBREL, in ascending order.
	Inbound(ctx context.Context, tenant, clientID string) ([]uint16, error)
}

// QueueStore keeps the offline queue of each session: messages waiting for
// the session's client to connect (or for room in its inflight window).
//
// Entries are numbered by Seq, assigned by AppendQueue: each new entry gets
// a number greater than every entry in the queue, so Seq order is append
// order. Numbers are not reused while the store is open, unless the session
// is deleted; after DeleteSession or a restart, an empty queue may number
// from 1 again. The store does not bound the
// queue: the caller checks QueueInfo and drops by its own policy.
type QueueStore interface {
	// AppendQueue adds m at the tail of the session's queue and returns its
	// sequence number.
	AppendQueue(ctx context.Context, tenant, clientID string, m *Message) (seq uint64, err error)

	// AppendQueueBatch appends ms in order, atomically (all or none), with
	// consecutive sequence numbers, and returns the first; 0 when ms is
	// empty. Persistent backends write the batch with one commit.
	AppendQueueBatch(ctx context.Context, tenant, clientID string, ms []*Message) (first uint64, err error)

	// PeekQueue returns up to limit entries with Seq >= from, oldest first,
	// without removing them. from 0 means from the head.
	PeekQueue(ctx context.Context, tenant, clientID string, from uint64, limit int) ([]QueueEntry, error)

	// TrimQueue removes every entry with Seq <= upTo. Trimming past the
	// tail empties the queue; trimming an empty queue is not an error.
	TrimQueue(ctx context.Context, tenant, clientID string, upTo uint64) error

	// QueueInfo returns the length, size and bounds of the session's queue.
	QueueInfo(ctx context.Context, tenant, clientID string) (QueueInfo, error)
}

// RetainedStore keeps the retained message of each topic of each tenant.
// The store does not interpret payloads: clearing a retained message on an
// empty payload is the caller's job.
type RetainedStore interface {
	// SetRetained stores m as the retained message of m.Topic, replacing
	// the previous one.
	SetRetained(ctx context.Context, tenant string, m *Message) error

	// ClearRetained removes the retained message of topic. Clearing a topic
	// with none is not an error.
	ClearRetained(ctx context.Context, tenant, topic string) error

	// GetRetained returns the retained message of topic, or ErrNotFound
	// when there is none or it has expired.
	GetRetained(ctx context.Context, tenant, topic string) (Message, error)

	// Retained calls fn for every unexpired retained message of tenant, in
	// topic byte order, until fn returns an error, which Retained returns.
	// fn may keep m; it must not call the store's writing methods (a
	// backend may hold a snapshot or a lock during the scan). The scan need
	// not be one snapshot: a message set or cleared during it may or may
	// not be seen.
	Retained(ctx context.Context, tenant string, fn func(m *Message) error) error
}

// WillStore keeps the will message of sessions.
type WillStore interface {
	// PutWill stores the session's will, replacing the previous one.
	PutWill(ctx context.Context, tenant, clientID string, w Will) error

	// GetWill returns the session's will, or ErrNotFound.
	GetWill(ctx context.Context, tenant, clientID string) (Will, error)

	// DeleteWill removes the session's will. Deleting a missing will is not
	// an error.
	DeleteWill(ctx context.Context, tenant, clientID string) error

	// Wills calls fn for the will of every session of every tenant, in no
	// particular order, until fn returns an error, which Wills returns. It
	// is meant for startup, to schedule the wills that are due.
	Wills(ctx context.Context, fn func(tenant, clientID string, w Will) error) error
}
