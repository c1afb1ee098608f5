package packet

// Version is the protocol level byte of CONNECT.
type Version byte

// Protocol levels.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

// Packet is implemented by every control packet type of this package.
type Packet interface {
	Type() Type
	// Append appends the whole encoded packet (fixed header included) for
	// version v. In 3.1.1 properties and v5-only fields are left out.
	// 0 allocations for Publish when dst has enough capacity.
	Append(dst []byte, v Version) ([]byte, error)
}

// Decode decodes a body of exactly h.Remaining bytes. For TypeConnect v is
// ignored (the packet states its own version). Byte slices in the result
// (Payload, CorrelationData, Password, WillPayload, AuthData) alias body;
// strings are copied.
func Decode(h Header, body []byte, v Version) (Packet, error) {
	return nil, errNotImplemented
}
