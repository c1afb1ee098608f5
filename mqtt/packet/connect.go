package packet

// Connect is the CONNECT control packet.
type Connect struct {
	ProtocolName   string // "MQTT", or "MQIsdp" for 3.1
	Version        Version
	CleanStart     bool // clean session in 3.1.1
	KeepAlive      uint16
	ClientID       string
	Properties     Properties
	WillFlag       bool
	WillQoS        byte
	WillRetain     bool
	WillTopic      string
	WillPayload    []byte
	WillProperties Properties
	UsernameFlag   bool
	Username       string
	PasswordFlag   bool
	Password       []byte
}

// Type returns TypeConnect.
func (p *Connect) Type() Type { return TypeConnect }

// Append appends the encoded packet to dst.
func (p *Connect) Append(dst []byte, v Version) ([]byte, error) { return dst, errNotImplemented }

// Decode decodes a body in place.
func (p *Connect) Decode(flags byte, body []byte, v Version) error { return errNotImplemented }
