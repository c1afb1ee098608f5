// Package memstore holds in-memory implementations of Ferry's storage
// contracts, for tests and for nodes that run without a data directory.
//
// # Basics
//
// [New] returns a [Store] implementing store.Store (broker state); registry.go
// holds the registry's store.RegistryStore. Nothing survives the process.
//
// # Caveats
//
// One mutex guards all broker state: memstore is built to be obviously
// correct, not fast under contention. Messages are copied in and out, so
// callers may reuse or modify what they pass and what they get.
package memstore

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

// Store is an in-memory store.Store, safe for concurrent use. Its zero value
// is not usable; call New.
type Store struct {
	mu       sync.Mutex
	sessions map[sessionKey]*session
	retained map[string]map[string]store.Message // tenant -> topic
	order    uint64                              // last outbound order handed out
}

var _ store.Store = (*Store)(nil)

type sessionKey struct{ tenant, clientID string }

// session holds everything stored under one (tenant, client id). rec is nil
// when state was written for a session whose record does not exist.
type session struct {
	rec      *store.Session
	subs     map[string]store.Subscription
	outbound map[uint16]outbound
	inbound  map[uint16]struct{}
	queue    []queued
	lastSeq  uint64
	bytes    int64
	will     *store.Will
}

type outbound struct {
	order uint64
	o     store.Outbound
}

type queued struct {
	seq  uint64
	size int64
	msg  store.Message
}

// New returns an empty in-memory store.
func New() *Store {
	return &Store{
		sessions: make(map[sessionKey]*session),
		retained: make(map[string]map[string]store.Message),
	}
}

// Close does nothing; it exists so that Store can stand in for a persistent
// backend.
func (s *Store) Close() error { return nil }

// get returns the state of a session, creating it when create is set.
// It returns nil for a missing session otherwise. s.mu must be held.
func (s *Store) get(tenant, clientID string, create bool) *session {
	k := sessionKey{tenant, clientID}
	ss := s.sessions[k]
	if ss == nil && create {
		ss = &session{
			subs:     make(map[string]store.Subscription),
			outbound: make(map[uint16]outbound),
			inbound:  make(map[uint16]struct{}),
		}
		s.sessions[k] = ss
	}
	return ss
}

// PutSession implements store.SessionStore.
func (s *Store) PutSession(ctx context.Context, tenant string, rec store.Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := rec.Check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(tenant, rec.ClientID, true).rec = &rec
	return nil
}

// GetSession implements store.SessionStore.
func (s *Store) GetSession(ctx context.Context, tenant, clientID string) (store.Session, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return store.Session{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, false)
	if ss == nil || ss.rec == nil {
		return store.Session{}, fmt.Errorf("session %q: %w", clientID, store.ErrNotFound)
	}
	return *ss.rec, nil
}

// DeleteSession implements store.SessionStore.
func (s *Store) DeleteSession(ctx context.Context, tenant, clientID string) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sessionKey{tenant, clientID})
	return nil
}

// Sessions implements store.SessionStore. fn runs without the lock held, on
// a snapshot, so it may call the store.
func (s *Store) Sessions(ctx context.Context, fn func(tenant string, rec store.Session) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type item struct {
		tenant string
		rec    store.Session
	}
	s.mu.Lock()
	var items []item
	for k, ss := range s.sessions {
		if ss.rec != nil {
			items = append(items, item{k.tenant, *ss.rec})
		}
	}
	s.mu.Unlock()
	for _, it := range items {
		if err := fn(it.tenant, it.rec); err != nil {
			return err
		}
	}
	return nil
}

// PutSubscription implements store.SubscriptionStore.
func (s *Store) PutSubscription(ctx context.Context, tenant, clientID string, sub store.Subscription) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	if err := sub.Check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(tenant, clientID, true).subs[sub.Filter] = sub
	return nil
}

// DeleteSubscription implements store.SubscriptionStore.
func (s *Store) DeleteSubscription(ctx context.Context, tenant, clientID, filter string) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, false)
	if ss == nil {
		return fmt.Errorf("subscription %q: %w", filter, store.ErrNotFound)
	}
	if _, ok := ss.subs[filter]; !ok {
		return fmt.Errorf("subscription %q: %w", filter, store.ErrNotFound)
	}
	delete(ss.subs, filter)
	return nil
}

// Subscriptions implements store.SubscriptionStore.
func (s *Store) Subscriptions(ctx context.Context, tenant, clientID string) ([]store.Subscription, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, false)
	if ss == nil {
		return nil, nil
	}
	subs := slices.Collect(maps.Values(ss.subs))
	slices.SortFunc(subs, func(a, b store.Subscription) int { return cmp.Compare(a.Filter, b.Filter) })
	return subs, nil
}

// PutOutbound implements store.InflightStore.
func (s *Store) PutOutbound(ctx context.Context, tenant, clientID string, o store.Outbound) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	if err := o.Check(); err != nil {
		return err
	}
	o.Message = o.Message.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, true)
	rec, ok := ss.outbound[o.PacketID]
	if !ok {
		s.order++
		rec.order = s.order
	}
	rec.o = o
	ss.outbound[o.PacketID] = rec
	return nil
}

// DeleteOutbound implements store.InflightStore.
func (s *Store) DeleteOutbound(ctx context.Context, tenant, clientID string, packetID uint16) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.get(tenant, clientID, false); ss != nil {
		delete(ss.outbound, packetID)
	}
	return nil
}

// Outbound implements store.InflightStore.
func (s *Store) Outbound(ctx context.Context, tenant, clientID string) ([]store.Outbound, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, false)
	if ss == nil {
		return nil, nil
	}
	recs := slices.SortedFunc(maps.Values(ss.outbound), func(a, b outbound) int { return cmp.Compare(a.order, b.order) })
	out := make([]store.Outbound, len(recs))
	for i, r := range recs {
		out[i] = r.o
		out[i].Message = r.o.Message.Clone()
	}
	return out, nil
}

// PutInbound implements store.InflightStore.
func (s *Store) PutInbound(ctx context.Context, tenant, clientID string, packetID uint16) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	if err := store.CheckPacketID(packetID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(tenant, clientID, true).inbound[packetID] = struct{}{}
	return nil
}

// DeleteInbound implements store.InflightStore.
func (s *Store) DeleteInbound(ctx context.Context, tenant, clientID string, packetID uint16) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.get(tenant, clientID, false); ss != nil {
		delete(ss.inbound, packetID)
	}
	return nil
}

// Inbound implements store.InflightStore.
func (s *Store) Inbound(ctx context.Context, tenant, clientID string) ([]uint16, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, false)
	if ss == nil {
		return nil, nil
	}
	return slices.Sorted(maps.Keys(ss.inbound)), nil
}

// AppendQueue implements store.QueueStore.
func (s *Store) AppendQueue(ctx context.Context, tenant, clientID string, m *store.Message) (uint64, error) {
	return s.AppendQueueBatch(ctx, tenant, clientID, []*store.Message{m})
}

// AppendQueueBatch implements store.QueueStore.
func (s *Store) AppendQueueBatch(ctx context.Context, tenant, clientID string, ms []*store.Message) (uint64, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return 0, err
	}
	entries := make([]queued, len(ms))
	for i, m := range ms {
		// The encoded size is what a persistent backend stores, so byte
		// limits mean the same thing on every backend.
		enc, err := m.MarshalBinary()
		if err != nil {
			return 0, err
		}
		entries[i] = queued{size: int64(len(enc)), msg: m.Clone()}
	}
	if len(ms) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, true)
	first := ss.lastSeq + 1
	for _, e := range entries {
		ss.lastSeq++
		e.seq = ss.lastSeq
		ss.queue = append(ss.queue, e)
		ss.bytes += e.size
	}
	return first, nil
}

// PeekQueue implements store.QueueStore.
func (s *Store) PeekQueue(ctx context.Context, tenant, clientID string, from uint64, limit int) ([]store.QueueEntry, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, false)
	if ss == nil || limit <= 0 {
		return nil, nil
	}
	i, _ := slices.BinarySearchFunc(ss.queue, from, func(q queued, seq uint64) int { return cmp.Compare(q.seq, seq) })
	var out []store.QueueEntry
	for ; i < len(ss.queue) && len(out) < limit; i++ {
		out = append(out, store.QueueEntry{Seq: ss.queue[i].seq, Message: ss.queue[i].msg.Clone()})
	}
	return out, nil
}

// TrimQueue implements store.QueueStore.
func (s *Store) TrimQueue(ctx context.Context, tenant, clientID string, upTo uint64) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, false)
	if ss == nil {
		return nil
	}
	n := 0
	for n < len(ss.queue) && ss.queue[n].seq <= upTo {
		ss.bytes -= ss.queue[n].size
		n++
	}
	// Copy down rather than reslice, so that a long-lived queue does not
	// pin every message it ever held.
	ss.queue = slices.Delete(ss.queue, 0, n)
	return nil
}

// QueueInfo implements store.QueueStore.
func (s *Store) QueueInfo(ctx context.Context, tenant, clientID string) (store.QueueInfo, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return store.QueueInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, false)
	if ss == nil || len(ss.queue) == 0 {
		return store.QueueInfo{}, nil
	}
	return store.QueueInfo{
		Len:   len(ss.queue),
		Bytes: ss.bytes,
		First: ss.queue[0].seq,
		Last:  ss.queue[len(ss.queue)-1].seq,
	}, nil
}

// SetRetained implements store.RetainedStore.
func (s *Store) SetRetained(ctx context.Context, tenant string, m *store.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.Check(); err != nil {
		return err
	}
	msg := m.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.retained[tenant]
	if t == nil {
		t = make(map[string]store.Message)
		s.retained[tenant] = t
	}
	t[m.Topic] = msg
	return nil
}

// ClearRetained implements store.RetainedStore.
func (s *Store) ClearRetained(ctx context.Context, tenant, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.retained[tenant], topic)
	if len(s.retained[tenant]) == 0 {
		delete(s.retained, tenant)
	}
	return nil
}

// GetRetained implements store.RetainedStore.
func (s *Store) GetRetained(ctx context.Context, tenant, topic string) (store.Message, error) {
	if err := ctx.Err(); err != nil {
		return store.Message{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.retained[tenant][topic]
	if !ok || m.Expired(time.Now()) {
		return store.Message{}, fmt.Errorf("retained %q: %w", topic, store.ErrNotFound)
	}
	return m.Clone(), nil
}

// Retained implements store.RetainedStore. fn runs on a snapshot, without
// the lock held.
func (s *Store) Retained(ctx context.Context, tenant string, fn func(m *store.Message) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	var msgs []store.Message
	for _, m := range s.retained[tenant] {
		if !m.Expired(now) {
			msgs = append(msgs, m.Clone())
		}
	}
	s.mu.Unlock()
	slices.SortFunc(msgs, func(a, b store.Message) int { return cmp.Compare(a.Topic, b.Topic) })
	for i := range msgs {
		if err := fn(&msgs[i]); err != nil {
			return err
		}
	}
	return nil
}

// PutWill implements store.WillStore.
func (s *Store) PutWill(ctx context.Context, tenant, clientID string, w store.Will) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	if err := w.Message.Check(); err != nil {
		return err
	}
	w.Message = w.Message.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(tenant, clientID, true).will = &w
	return nil
}

// GetWill implements store.WillStore.
func (s *Store) GetWill(ctx context.Context, tenant, clientID string) (store.Will, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return store.Will{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.get(tenant, clientID, false)
	if ss == nil || ss.will == nil {
		return store.Will{}, fmt.Errorf("will of %q: %w", clientID, store.ErrNotFound)
	}
	w := *ss.will
	w.Message = w.Message.Clone()
	return w, nil
}

// DeleteWill implements store.WillStore.
func (s *Store) DeleteWill(ctx context.Context, tenant, clientID string) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.get(tenant, clientID, false); ss != nil {
		ss.will = nil
	}
	return nil
}

// Wills implements store.WillStore. fn runs on a snapshot, without the lock
// held.
func (s *Store) Wills(ctx context.Context, fn func(tenant, clientID string, w store.Will) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type item struct {
		k sessionKey
		w store.Will
	}
	s.mu.Lock()
	var items []item
	for k, ss := range s.sessions {
		if ss.will != nil {
			w := *ss.will
			w.Message = w.Message.Clone()
			items = append(items, item{k, w})
		}
	}
	s.mu.Unlock()
	for _, it := range items {
		if err := fn(it.k.tenant, it.k.clientID, it.w); err != nil {
			return err
		}
	}
	return nil
}
