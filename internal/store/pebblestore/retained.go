package pebblestore

import (
	"context"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

// SetRetained implements store.RetainedStore.
func (s *Store) SetRetained(ctx context.Context, tenant string, m *store.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	_ = b.Set(retainedKey(tenant, m.Topic), v, nil)
	return s.write(b)
}

// ClearRetained implements store.RetainedStore.
func (s *Store) ClearRetained(ctx context.Context, tenant, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b := s.db.NewBatch()
	_ = b.Delete(retainedKey(tenant, topic), nil)
	return s.write(b)
}

// GetRetained implements store.RetainedStore.
func (s *Store) GetRetained(ctx context.Context, tenant, topic string) (store.Message, error) {
	if err := ctx.Err(); err != nil {
		return store.Message{}, err
	}
	var m store.Message
	v, err := s.get(retainedKey(tenant, topic))
	if err == nil {
		err = m.UnmarshalBinary(v)
	}
	if err == nil && m.Expired(time.Now()) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("retained %q: %w", topic, err)
	}
	return m, nil
}

// Retained implements store.RetainedStore. Topics are stored raw after the
// tenant's length prefix, so key order is topic byte order.
func (s *Store) Retained(ctx context.Context, tenant string, fn func(m *store.Message) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	p := retainedPrefix(tenant)
	return s.scan(ctx, p, store.PrefixEnd(p), func(_, v []byte) error {
		var m store.Message
		if err := m.UnmarshalBinary(v); err != nil {
			return err
		}
		if m.Expired(now) {
			return nil
		}
		return fn(&m)
	})
}

// PutWill implements store.WillStore.
func (s *Store) PutWill(ctx context.Context, tenant, clientID string, w store.Will) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	v, err := encodeWill(&w)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	_ = b.Set(sessionPrefix(kindWill, tenant, clientID, 0), v, nil)
	return s.write(b)
}

// GetWill implements store.WillStore.
func (s *Store) GetWill(ctx context.Context, tenant, clientID string) (store.Will, error) {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return store.Will{}, err
	}
	v, err := s.get(sessionPrefix(kindWill, tenant, clientID, 0))
	if err != nil {
		return store.Will{}, fmt.Errorf("will of %q: %w", clientID, err)
	}
	return decodeWill(v)
}

// DeleteWill implements store.WillStore.
func (s *Store) DeleteWill(ctx context.Context, tenant, clientID string) error {
	if err := store.CheckSessionCall(ctx, clientID); err != nil {
		return err
	}
	b := s.db.NewBatch()
	_ = b.Delete(sessionPrefix(kindWill, tenant, clientID, 0), nil)
	return s.write(b)
}

// Wills implements store.WillStore.
func (s *Store) Wills(ctx context.Context, fn func(tenant, clientID string, w store.Will) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	lower := []byte{kindWill}
	return s.scan(ctx, lower, store.PrefixEnd(lower), func(k, v []byte) error {
		tenant, clientID, rest, ok := parseSessionKey(k)
		if !ok || len(rest) != 0 {
			return fmt.Errorf("%w: will key %x", store.ErrCorrupt, k)
		}
		w, err := decodeWill(v)
		if err != nil {
			return err
		}
		return fn(tenant, clientID, w)
	})
}
