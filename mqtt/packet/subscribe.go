package packet

// Subscribe is the SUBSCRIBE control packet.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties
	Subscriptions []Subscription
}

// Type returns TypeSubscribe.
func (p *Subscribe) Type() Type { return TypeSubscribe }

// Append appends the encoded packet to dst.
func (p *Subscribe) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Subscribe) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }

// Subscription is one entry of a SUBSCRIBE.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}
