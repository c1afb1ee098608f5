package store

import (
	"context"
	"fmt"
)

// The checks below are shared by the backends so that they refuse the same
// arguments with the same error; storetest holds them to it.

// CheckClientID returns an ErrInvalid error for a client id no session can
// have.
func CheckClientID(clientID string) error {
	if clientID == "" {
		return fmt.Errorf("%w: empty client id", ErrInvalid)
	}
	return nil
}

// CheckSessionCall is the common start of a backend's per-session
// methods: ctx still live, clientID valid.
func CheckSessionCall(ctx context.Context, clientID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return CheckClientID(clientID)
}

// Check returns an ErrInvalid error when m cannot be stored.
func (m *Message) Check() error {
	if m.QoS > 2 {
		return fmt.Errorf("%w: message QoS %d", ErrInvalid, m.QoS)
	}
	for _, p := range m.Properties {
		switch p.Value.(type) {
		case string, int64, bool:
		default:
			return fmt.Errorf("%w: property %q has a value of type %T (string, int64 or bool)", ErrInvalid, p.Key, p.Value)
		}
	}
	return nil
}

// Check returns an ErrInvalid error when sub cannot be stored.
func (sub *Subscription) Check() error {
	switch {
	case sub.Filter == "":
		return fmt.Errorf("%w: empty subscription filter", ErrInvalid)
	case sub.QoS > 2:
		return fmt.Errorf("%w: subscription QoS %d", ErrInvalid, sub.QoS)
	case sub.RetainHandling > 2:
		return fmt.Errorf("%w: retain handling %d", ErrInvalid, sub.RetainHandling)
	}
	return nil
}

// Check returns an ErrInvalid error when o cannot be stored.
func (o *Outbound) Check() error {
	if o.PacketID == 0 {
		return fmt.Errorf("%w: packet id 0", ErrInvalid)
	}
	if o.State != OutboundPublished && o.State != OutboundReleased {
		return fmt.Errorf("%w: outbound state %d", ErrInvalid, o.State)
	}
	return o.Message.Check()
}

// Check returns an ErrInvalid error when s cannot be stored.
func (s *Session) Check() error {
	if err := CheckClientID(s.ClientID); err != nil {
		return err
	}
	if s.ExpiryInterval < 0 {
		return fmt.Errorf("%w: negative session expiry interval", ErrInvalid)
	}
	return nil
}

// CheckPacketID returns an ErrInvalid error for packet id 0, which MQTT
// never uses for QoS 1 and 2.
func CheckPacketID(id uint16) error {
	if id == 0 {
		return fmt.Errorf("%w: packet id 0", ErrInvalid)
	}
	return nil
}
