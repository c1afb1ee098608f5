// Package store holds Ferry's storage contracts and the records they move:
// the broker state of MQTT sessions (sessions, subscriptions, inflight
// QoS 1/2 state, offline queues, pending wills), retained messages, and the
// registry's key-value space (registry.go).
//
// # Basics
//
// A backend implements [Store], which is composed of small interfaces, one
// per kind of record: [SessionStore], [SubscriptionStore], [InflightStore],
// [QueueStore], [RetainedStore] and [WillStore]. Code that needs one kind of
// record should accept the small interface, not Store.
//
// Every record lives inside a tenant: the same client id or topic in two
// tenants names two unrelated records, and no method reaches across tenants
// except the startup scans ([SessionStore.Sessions], [WillStore.Wills]),
// which report the tenant of each record.
//
// Messages are stored as [Message], a protocol-neutral copy of what the hub
// routes. [Message.AppendBinary] and [Message.UnmarshalBinary] give it a
// compact, versioned binary form that persistent backends write to disk.
//
// Backends: memstore (in memory, for tests and ephemeral runs) and
// pebblestore (the embedded default, one data directory). Both pass the
// conformance suite in storetest.
//
// # Durability
//
// Every writing method is atomic: after a crash either all of its effects
// are present or none is. When a writing method returns nil on a persistent
// backend in its default (sync) mode, its effects survive a crash of the
// process or of the machine. Backends may offer weaker modes (pebblestore's
// batch and none), which trade a window of recent acknowledged writes for
// throughput; the mode is the operator's choice, documented by the backend.
//
// Reads see every write that returned before the read started
// (read-your-writes), in every mode.
//
// Methods check their context when they start and fail with its error if
// it is done. A write that has started is not abandoned when the context
// ends later: its batch may already be on its way to the disk.
//
// # Caveats
//
// The store does not serialise operations on one session: two concurrent
// calls for the same (tenant, client id) may interleave. The hub owns each
// session and issues its writes one at a time; the counts of [QueueStore]
// are exact only under that discipline.
//
// The store does not check that a session exists before writing its
// subscriptions, inflight state, queue or will; [SessionStore.DeleteSession]
// removes all of them whether or not the session record exists.
//
// Expired messages are not removed by the store on its own: GetRetained and
// Retained hide retained messages whose expiry has passed, and the caller
// clears them when convenient. Queued and inflight messages are returned
// whatever their expiry; the hub decides what to drop.
package store
