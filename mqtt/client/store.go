package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Stored is an outgoing QoS 1 or 2 message that the server has not
// acknowledged completely.
type Stored struct {
	// Seq orders the messages: they are sent again in ascending Seq
	// [MQTT-4.6.0-1].
	Seq uint64
	// Released is true once a QoS 2 message got its PUBREC: what is sent
	// again is then the PUBREL, not the PUBLISH.
	Released bool
	// Publish is the message with its packet identifier. Its Dup flag is
	// not meaningful; the client sets it when sending.
	Publish *packet.Publish
}

// Store keeps the client's side of the session, so that what was not
// acknowledged survives a reconnection (MemoryStore) or a restart of the
// process (FileStore): the outgoing QoS 1 and 2 messages in flight, and the
// packet identifiers of the inbound QoS 2 messages that were handled and
// await their PUBREL (a PUBLISH with one of those is a duplicate, not
// delivered again).
//
// A Client calls the methods from one goroutine at a time, and a write must
// be durable when it returns: the client sends the packet only afterwards.
// One Store serves one client identifier.
type Store interface {
	// Load returns what the store holds, for a client that starts.
	Load() (out []Stored, in []uint16, err error)
	// PutOutgoing adds the message or replaces the one with the same packet
	// identifier.
	PutOutgoing(m Stored) error
	// DeleteOutgoing forgets the message with packet identifier id.
	DeleteOutgoing(id uint16) error
	// PutInbound records an inbound QoS 2 packet identifier awaiting PUBREL.
	PutInbound(id uint16) error
	// DeleteInbound forgets an inbound QoS 2 packet identifier.
	DeleteInbound(id uint16) error
	// Reset forgets everything, for a clean start.
	Reset() error
	// Close releases the store's resources; the Client does not call it.
	Close() error
}

// MemoryStore is a Store that lives as long as the process: it carries a
// session across reconnections but not across restarts. Its zero value is
// ready to use.
type MemoryStore struct {
	mu  sync.Mutex
	out map[uint16]Stored
	in  map[uint16]struct{}
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// Load implements Store.
func (s *MemoryStore) Load() ([]Stored, []uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Stored, 0, len(s.out))
	for _, m := range s.out {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Stored) int { return compareSeq(a.Seq, b.Seq) })
	in := make([]uint16, 0, len(s.in))
	for id := range s.in {
		in = append(in, id)
	}
	slices.Sort(in)
	return out, in, nil
}

// PutOutgoing implements Store.
func (s *MemoryStore) PutOutgoing(m Stored) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		s.out = make(map[uint16]Stored)
	}
	// A copy, so that the caller may keep changing its own.
	p := *m.Publish
	m.Publish = &p
	s.out[p.PacketID] = m
	return nil
}

// DeleteOutgoing implements Store.
func (s *MemoryStore) DeleteOutgoing(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.out, id)
	return nil
}

// PutInbound implements Store.
func (s *MemoryStore) PutInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.in == nil {
		s.in = make(map[uint16]struct{})
	}
	s.in[id] = struct{}{}
	return nil
}

// DeleteInbound implements Store.
func (s *MemoryStore) DeleteInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.in, id)
	return nil
}

// Reset implements Store.
func (s *MemoryStore) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out, s.in = nil, nil
	return nil
}

// Close implements Store; it does nothing.
func (s *MemoryStore) Close() error { return nil }

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// FileStore is a Store in one directory: a file per outgoing message
// (out-<packet id>) and an empty file per inbound QoS 2 identifier
// (in-<packet id>). A write goes to a temporary file that is synced and
// renamed over the old one, and the directory is synced, so a crash leaves
// either the old or the new state, never a torn file. That costs two fsyncs
// per QoS 1 message and four per QoS 2 message: a FileStore is for
// messages that must survive a crash, not for a high rate.
//
// Only one process may use a directory at a time; nothing checks it.
type FileStore struct {
	dir string
	mu  sync.Mutex
}

// OpenFileStore returns a FileStore in dir, creating the directory if
// needed. What is in it stays: a client that starts with it resends the
// messages a previous process left unacknowledged.
func OpenFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &FileStore{dir: dir}, nil
}

// The file of an outgoing message: this magic, Seq (8 bytes big endian), a
// flags byte (1: released), then the PUBLISH encoded as MQTT 5, whatever
// the connection's version, so that its properties are kept.
const fileMagic = "FMQ1"

// Load implements Store. A file that cannot be decoded is an error, not
// skipped: it holds a message the application was promised.
func (s *FileStore) Load() ([]Stored, []uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, err
	}
	var out []Stored
	var in []uint16
	for _, e := range entries {
		name := e.Name()
		kind, num, ok := strings.Cut(name, "-")
		if !ok || (kind != "out" && kind != "in") {
			continue // temporary files of an interrupted write, foreign files
		}
		id, err := strconv.ParseUint(num, 10, 16)
		if err != nil || id == 0 {
			continue
		}
		if kind == "in" {
			in = append(in, uint16(id))
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			return nil, nil, err
		}
		m, err := DecodeStored(b)
		if err != nil {
			return nil, nil, fmt.Errorf("mqtt client: file store %s: %w", filepath.Join(s.dir, name), err)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Stored) int { return compareSeq(a.Seq, b.Seq) })
	slices.Sort(in)
	return out, in, nil
}

// EncodeStored is the binary form of m that FileStore writes, for other
// Store implementations: a magic, Seq, a flags byte, then the PUBLISH
// encoded as MQTT 5 whatever the connection's version, so that its
// properties are kept (without Dup and topic alias, which belong to one
// connection).
func EncodeStored(m Stored) ([]byte, error) {
	b := make([]byte, 0, len(fileMagic)+9+len(m.Publish.Payload)+len(m.Publish.Topic)+16)
	b = append(b, fileMagic...)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	var flags byte
	if m.Released {
		flags = 1
	}
	b = append(b, flags)
	p := *m.Publish
	p.Dup = false
	p.Properties.TopicAlias = nil
	return p.Append(b, packet.V5)
}

// DecodeStored reads what EncodeStored wrote.
func DecodeStored(b []byte) (Stored, error) {
	if len(b) < len(fileMagic)+9 || !bytes.HasPrefix(b, []byte(fileMagic)) {
		return Stored{}, errors.New("not a stored message")
	}
	b = b[len(fileMagic):]
	m := Stored{Seq: binary.BigEndian.Uint64(b), Released: b[8]&1 != 0}
	rest := b[9:]
	r := bytes.NewReader(rest)
	h, err := packet.ReadHeader(r)
	if err != nil {
		return Stored{}, err
	}
	if h.Type != packet.TypePublish || h.Remaining != r.Len() {
		return Stored{}, errors.New("not a PUBLISH")
	}
	p := new(packet.Publish)
	if err := p.Decode(h.Flags, rest[len(rest)-r.Len():], packet.V5); err != nil {
		return Stored{}, err
	}
	m.Publish = p
	return m, nil
}

// PutOutgoing implements Store.
func (s *FileStore) PutOutgoing(m Stored) error {
	b, err := EncodeStored(m)
	if err != nil {
		return err
	}
	p := m.Publish
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write("out-"+strconv.Itoa(int(p.PacketID)), b)
}

// DeleteOutgoing implements Store.
func (s *FileStore) DeleteOutgoing(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remove("out-" + strconv.Itoa(int(id)))
}

// PutInbound implements Store.
func (s *FileStore) PutInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write("in-"+strconv.Itoa(int(id)), nil)
}

// DeleteInbound implements Store.
func (s *FileStore) DeleteInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remove("in-" + strconv.Itoa(int(id)))
}

// Reset implements Store.
func (s *FileStore) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "out-") || strings.HasPrefix(n, "in-") || strings.HasPrefix(n, ".tmp-") {
			if err := os.Remove(filepath.Join(s.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return s.syncDir()
}

// Close implements Store; it does nothing, since every write is complete
// when it returns.
func (s *FileStore) Close() error { return nil }

func (s *FileStore) write(name string, b []byte) error {
	f, err := os.CreateTemp(s.dir, ".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return s.syncDir()
}

func (s *FileStore) remove(name string) error {
	err := os.Remove(filepath.Join(s.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.syncDir()
}

// syncDir makes a rename or a removal durable: without it a crash may bring
// back the old directory entry.
func (s *FileStore) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
