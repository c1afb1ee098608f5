package hub

import (
	"log/slog"
	"slices"
)

// The inbound QoS 2 state of a session [MQTT-4.3.3-9]: the packet ids of
// QoS 2 messages its client sent that were handed on (PUBREC due) and not
// yet released by PUBREL. They belong to the session, not the connection,
// so that a PUBLISH the client sends again with DUP after a reconnect is
// not delivered twice; a durable session keeps them in the store, so that
// this holds across a restart as well.

// InboundQoS2 returns the session's ids awaiting PUBREL, ascending; a
// durable session recovered from the store reads them from there once.
func (s *Session) InboundQoS2() []uint16 {
	s.mu.Lock()
	load := s.durable && !s.inboundLoaded
	s.mu.Unlock()
	if load {
		ids, err := s.hub.opts.Store.Inbound(s.hub.ctx, s.t.name, s.ID)
		if err != nil {
			s.hub.opts.Logger.Warn("inbound QoS 2 ids not read", slog.String("client", s.ID), slog.Any("err", err))
		}
		s.mu.Lock()
		if !s.inboundLoaded {
			s.inboundLoaded = true
			for _, id := range ids {
				if s.inbound == nil {
					s.inbound = map[uint16]struct{}{}
				}
				s.inbound[id] = struct{}{}
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]uint16, 0, len(s.inbound))
	for id := range s.inbound {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// AwaitRelease records that the QoS 2 message id was handed on, before its
// PUBREC; a durable session stores it first.
func (s *Session) AwaitRelease(id uint16) {
	s.mu.Lock()
	if s.inbound == nil {
		s.inbound = map[uint16]struct{}{}
	}
	s.inbound[id] = struct{}{}
	durable := s.durable
	s.mu.Unlock()
	if durable {
		if err := s.hub.opts.Store.PutInbound(s.hub.ctx, s.t.name, s.ID, id); err != nil {
			s.hub.opts.Logger.Warn("inbound QoS 2 id not stored", slog.String("client", s.ID), slog.Any("err", err))
		}
	}
}

// ReleasedInbound forgets id: released by the client, or refused.
func (s *Session) ReleasedInbound(id uint16) {
	s.mu.Lock()
	_, had := s.inbound[id]
	delete(s.inbound, id)
	durable := s.durable
	s.mu.Unlock()
	if had && durable {
		if err := s.hub.opts.Store.DeleteInbound(s.hub.ctx, s.t.name, s.ID, id); err != nil {
			s.hub.opts.Logger.Warn("inbound QoS 2 id not deleted", slog.String("client", s.ID), slog.Any("err", err))
		}
	}
}
