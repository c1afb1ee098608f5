package packet

// Publish is the PUBLISH control packet.
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string
	PacketID   uint16
	Properties Properties
	Payload    []byte
}

// Type returns TypePublish.
func (p *Publish) Type() Type { return TypePublish }

// Append appends the encoded packet to dst.
func (p *Publish) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Publish) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
