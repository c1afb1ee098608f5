package bridge

import "github.com/ferry-iot/ferry/mqtt/client"

// store keeps the client's outgoing messages in memory and its inbound
// QoS 2 identifiers on disk. The outgoing ones need no file: the hub
// session keeps each in its store until the remote acknowledged it, and
// sends it again after a restart, so a file copy would only send it twice.
// The inbound identifiers must outlive a restart, or a QoS 2 message the
// remote sends again would be published locally twice.
type store struct {
	*client.MemoryStore
	disk *client.FileStore
}

func (s *store) Load() ([]client.Stored, []uint16, error) {
	_, in, err := s.disk.Load()
	if err != nil {
		return nil, nil, err
	}
	out, _, err := s.MemoryStore.Load()
	return out, in, err
}

func (s *store) PutInbound(id uint16) error { return s.disk.PutInbound(id) }

func (s *store) DeleteInbound(id uint16) error { return s.disk.DeleteInbound(id) }

func (s *store) Reset() error {
	if err := s.MemoryStore.Reset(); err != nil {
		return err
	}
	return s.disk.Reset()
}

func (s *store) Close() error { return s.disk.Close() }
