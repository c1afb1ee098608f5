package pebblestore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/ferry-iot/ferry/internal/store"
)

// PutSubscription implements store.SubscriptionStore.
func (s *Store) PutSubscription(ctx context.Context, tenant, clientID string, sub store.Subscription) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	if err := sub.Check(); err != nil {
		return err
	}
	b := s.db.NewBatch()
	_ = b.Set(subscriptionKey(tenant, clientID, sub.Filter), encodeSubscription(&sub), nil)
	return s.write(b)
}

// DeleteSubscription implements store.SubscriptionStore. The existence
// check and the deletion are not one atomic step; the caller serialises a
// session's calls (see the store package's Caveats).
func (s *Store) DeleteSubscription(ctx context.Context, tenant, clientID, filter string) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	key := subscriptionKey(tenant, clientID, filter)
	if _, err := s.get(key); err != nil {
		return fmt.Errorf("subscription %q: %w", filter, err)
	}
	b := s.db.NewBatch()
	_ = b.Delete(key, nil)
	return s.write(b)
}

// Subscriptions implements store.SubscriptionStore.
func (s *Store) Subscriptions(ctx context.Context, tenant, clientID string) ([]store.Subscription, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return nil, err
	}
	p := sessionPrefix(kindSubscription, tenant, clientID, 0)
	var subs []store.Subscription
	err := s.scan(ctx, p, store.PrefixEnd(p), func(k, v []byte) error {
		sub, err := decodeSubscription(string(k[len(p):]), v)
		subs = append(subs, sub)
		return err
	})
	return subs, err
}

// loadOutbound finds the next insertion number of a session's outbound
// records, once. st.mu is held.
func (s *Store) loadOutbound(ctx context.Context, st *sessionSeqs, tenant, clientID string) error {
	if st.outLoaded {
		return nil
	}
	p := sessionPrefix(kindOutbound, tenant, clientID, 0)
	next := uint64(1)
	err := s.scan(ctx, p, store.PrefixEnd(p), func(_, v []byte) error {
		order, err := outboundOrder(v)
		next = max(next, order+1)
		return err
	})
	if err != nil {
		return err
	}
	st.oNext, st.outLoaded = next, true
	return nil
}

// PutOutbound implements store.InflightStore.
func (s *Store) PutOutbound(ctx context.Context, tenant, clientID string, o store.Outbound) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	if err := o.Check(); err != nil {
		return err
	}
	key := packetKey(kindOutbound, tenant, clientID, o.PacketID)
	st := s.lockSeqs(tenant, clientID)
	if err := s.loadOutbound(ctx, st, tenant, clientID); err != nil {
		st.mu.Unlock()
		return err
	}
	// A replaced record keeps its order. The read sees the record if it is
	// committed, which it is when this session's calls are serialised.
	order := st.oNext
	old, err := s.get(key)
	switch {
	case err == nil:
		if order, err = outboundOrder(old); err != nil {
			st.mu.Unlock()
			return err
		}
	case !errors.Is(err, store.ErrNotFound):
		st.mu.Unlock()
		return err
	}
	v, err := encodeOutbound(order, &o)
	if err != nil {
		st.mu.Unlock()
		return err
	}
	b := s.db.NewBatch()
	_ = b.Set(key, v, nil)
	r, err := s.submit(b)
	if err != nil {
		st.mu.Unlock()
		_ = b.Close()
		return err
	}
	if order == st.oNext {
		st.oNext++
	}
	st.mu.Unlock()
	if err := r.wait(); err != nil {
		s.forgetSeqs(tenant, clientID)
		return fmt.Errorf("pebblestore: commit: %w", err)
	}
	return nil
}

// DeleteOutbound implements store.InflightStore.
func (s *Store) DeleteOutbound(ctx context.Context, tenant, clientID string, packetID uint16) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	b := s.db.NewBatch()
	_ = b.Delete(packetKey(kindOutbound, tenant, clientID, packetID), nil)
	return s.write(b)
}

// Outbound implements store.InflightStore.
func (s *Store) Outbound(ctx context.Context, tenant, clientID string) ([]store.Outbound, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return nil, err
	}
	type rec struct {
		order uint64
		o     store.Outbound
	}
	var recs []rec
	p := sessionPrefix(kindOutbound, tenant, clientID, 0)
	err := s.scan(ctx, p, store.PrefixEnd(p), func(k, v []byte) error {
		order, o, err := decodeOutbound(binary.BigEndian.Uint16(k[len(k)-2:]), v)
		recs = append(recs, rec{order, o})
		return err
	})
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b rec) int { return cmp.Compare(a.order, b.order) })
	out := make([]store.Outbound, len(recs))
	for i, r := range recs {
		out[i] = r.o
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
	b := s.db.NewBatch()
	_ = b.Set(packetKey(kindInbound, tenant, clientID, packetID), nil, nil)
	return s.write(b)
}

// DeleteInbound implements store.InflightStore.
func (s *Store) DeleteInbound(ctx context.Context, tenant, clientID string, packetID uint16) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	b := s.db.NewBatch()
	_ = b.Delete(packetKey(kindInbound, tenant, clientID, packetID), nil)
	return s.write(b)
}

// Inbound implements store.InflightStore. Packet ids are big-endian in the
// keys, so key order is numeric order.
func (s *Store) Inbound(ctx context.Context, tenant, clientID string) ([]uint16, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return nil, err
	}
	var ids []uint16
	p := sessionPrefix(kindInbound, tenant, clientID, 0)
	err := s.scan(ctx, p, store.PrefixEnd(p), func(k, _ []byte) error {
		ids = append(ids, binary.BigEndian.Uint16(k[len(k)-2:]))
		return nil
	})
	return ids, err
}
