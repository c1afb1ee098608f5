// Package pebblestore is a client.Store on Pebble, the embedded key-value
// store Ferry keeps its own state in: one directory per client identifier,
// every write synced before it returns, so the messages a client has in
// flight survive a crash of the process or the machine. It suits clients
// with many messages in flight, where FileStore's file per message costs
// more.
package pebblestore

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferry-iot/ferry/mqtt/client"
)

// Keys: 'o' + packet id (2 bytes, big endian) for an outgoing message (its
// client.EncodeStored form), 'i' + packet id for an inbound QoS 2 id.
const (
	prefixOut = 'o'
	prefixIn  = 'i'
)

func key(prefix byte, id uint16) []byte { return []byte{prefix, byte(id >> 8), byte(id)} }

// Store is a client.Store in a Pebble database.
type Store struct{ db *pebble.DB }

var _ client.Store = (*Store)(nil)

// Open opens (or creates) the store in dir.
func Open(dir string) (*Store, error) {
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		return nil, fmt.Errorf("mqtt client: pebble store %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// Load implements client.Store. A record that cannot be decoded is an
// error: it holds a message the application was promised.
func (s *Store) Load() ([]client.Stored, []uint16, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	var out []client.Stored
	var in []uint16
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 3 {
			continue
		}
		id := binary.BigEndian.Uint16(k[1:])
		switch k[0] {
		case prefixIn:
			in = append(in, id)
		case prefixOut:
			m, err := client.DecodeStored(slices.Clone(it.Value()))
			if err != nil {
				return nil, nil, fmt.Errorf("mqtt client: pebble store, message %d: %w", id, err)
			}
			out = append(out, m)
		}
	}
	if err := it.Error(); err != nil {
		return nil, nil, err
	}
	// Sent again in the order they were first sent [MQTT-4.6.0-1].
	slices.SortFunc(out, func(a, b client.Stored) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, in, nil
}

// PutOutgoing implements client.Store.
func (s *Store) PutOutgoing(m client.Stored) error {
	b, err := client.EncodeStored(m)
	if err != nil {
		return err
	}
	return s.db.Set(key(prefixOut, m.Publish.PacketID), b, pebble.Sync)
}

// DeleteOutgoing implements client.Store.
func (s *Store) DeleteOutgoing(id uint16) error {
	return s.db.Delete(key(prefixOut, id), pebble.Sync)
}

// PutInbound implements client.Store.
func (s *Store) PutInbound(id uint16) error { return s.db.Set(key(prefixIn, id), nil, pebble.Sync) }

// DeleteInbound implements client.Store.
func (s *Store) DeleteInbound(id uint16) error { return s.db.Delete(key(prefixIn, id), pebble.Sync) }

// Reset implements client.Store.
func (s *Store) Reset() error {
	return s.db.DeleteRange([]byte{0}, []byte{0xff}, pebble.Sync)
}

// Close implements client.Store: the Client does not call it.
func (s *Store) Close() error {
	if s.db == nil {
		return errors.New("mqtt client: pebble store already closed")
	}
	err := s.db.Close()
	s.db = nil
	return err
}
