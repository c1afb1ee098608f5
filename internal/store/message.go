package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// Message is a stored message: what the hub routes, in a form independent of
// the protocol that brought it. Stored for one session (queue, inflight,
// will) it is the message as that session receives it.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Expiry is when the message stops being deliverable; zero means never.
	Expiry time.Time

	// MQTT 5 publish properties, carried end to end.
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	// PayloadFormat is the payload format indicator; nil when absent.
	PayloadFormat  *byte
	UserProperties []UserProperty

	// Origin is the client id of the publishing session, for no-local
	// subscriptions; empty when the message came from no session.
	Origin string

	// SubscriptionIDs are the identifiers of the subscriptions that matched,
	// for a message stored for one session; empty otherwise.
	SubscriptionIDs []uint32

	// Created is when the message entered Ferry (AMQP creation-time, a
	// Kafka record's creation-time header); zero when unknown.
	Created time.Time
	// Properties are typed application properties: AMQP
	// application-properties and, for keys starting with "x-opt-",
	// message annotations; Kafka headers. Hono's device_id, orig_adapter,
	// qos and ttd travel here. Values are string, int64 or bool.
	Properties []Property
}

// UserProperty is an MQTT 5 user property. Order is significant, and a key
// may repeat.
type UserProperty struct{ Key, Value string }

// Property is a typed application property. Value is a string, an int64
// or a bool.
type Property struct {
	Key   string
	Value any
}

// PropertyValue returns the value of the first property named key.
func PropertyValue(props []Property, key string) (any, bool) {
	for _, p := range props {
		if p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}

// Expired reports whether m may no longer be delivered at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.Expiry.IsZero() && !now.Before(m.Expiry)
}

// Equal reports whether m and o hold the same message. Nil and empty byte
// slices are equal, and times are compared with time.Time.Equal, because the
// binary form keeps neither distinction.
func (m *Message) Equal(o *Message) bool {
	return m.Topic == o.Topic && bytes.Equal(m.Payload, o.Payload) &&
		m.QoS == o.QoS && m.Retain == o.Retain && m.Expiry.Equal(o.Expiry) &&
		m.ContentType == o.ContentType && m.ResponseTopic == o.ResponseTopic &&
		bytes.Equal(m.CorrelationData, o.CorrelationData) &&
		(m.PayloadFormat == nil) == (o.PayloadFormat == nil) &&
		(m.PayloadFormat == nil || *m.PayloadFormat == *o.PayloadFormat) &&
		slices.Equal(m.UserProperties, o.UserProperties) && m.Origin == o.Origin &&
		slices.Equal(m.SubscriptionIDs, o.SubscriptionIDs) && m.Created.Equal(o.Created) &&
		slices.Equal(m.Properties, o.Properties)
}

// Clone returns a deep copy of m, sharing no memory with it.
func (m *Message) Clone() Message {
	c := *m
	c.Payload = bytes.Clone(m.Payload)
	c.CorrelationData = bytes.Clone(m.CorrelationData)
	if m.PayloadFormat != nil {
		f := *m.PayloadFormat
		c.PayloadFormat = &f
	}
	c.UserProperties = slices.Clone(m.UserProperties)
	c.SubscriptionIDs = slices.Clone(m.SubscriptionIDs)
	c.Properties = slices.Clone(m.Properties) // values are immutable
	return c
}

// The binary form, version 1. Integers are unsigned varints (uv) unless
// stated; strings and byte fields are a uv length followed by the bytes.
//
//	version      byte  1
//	flags        byte  bits 0-1 QoS, 2 retain, 3 expiry, 4 payload format
//	optional     byte  presence bits: 0 content type, 1 response topic,
//	                   2 correlation data, 3 user properties, 4 origin,
//	                   5 subscription ids
//	topic        string
//	payload      bytes
//	expiry       signed varint, Unix nanoseconds   (if flags bit 3)
//	format       byte                              (if flags bit 4)
//	content type string                            (if optional bit 0)
//	response     string                            (if optional bit 1)
//	correlation  bytes                             (if optional bit 2)
//	user props   uv count, then key, value strings (if optional bit 3)
//	origin       string                            (if optional bit 4)
//	sub ids      uv count, then uv each            (if optional bit 5)
//	created      signed varint, Unix nanoseconds   (if optional bit 6)
//	properties   uv count, then per property: key  (if optional bit 7)
//	             string, a type byte (0 string, 1 int64 as signed
//	             varint, 2 bool as a byte) and the value
//
// Bits 6 and 7 were added later; a record without them reads as before.
//
// Unknown versions and unknown flag bits are refused rather than skipped:
// a newer writer's records must not be half-read by an older reader.
const messageVersion = 1

const (
	flagQoSMask       = 0x03
	flagRetain        = 1 << 2
	flagExpiry        = 1 << 3
	flagPayloadFormat = 1 << 4
	flagsKnown        = flagQoSMask | flagRetain | flagExpiry | flagPayloadFormat

	optContentType   = 1 << 0
	optResponseTopic = 1 << 1
	optCorrelation   = 1 << 2
	optUserProps     = 1 << 3
	optOrigin        = 1 << 4
	optSubIDs        = 1 << 5
	optCreated       = 1 << 6
	optProperties    = 1 << 7
	optKnown         = 1<<8 - 1
)

// Property value types in the binary form.
const (
	propString = 0
	propInt    = 1
	propBool   = 2
)

// AppendBinary appends the binary form of m to dst (encoding.BinaryAppender).
// It fails only for a QoS above 2.
func (m *Message) AppendBinary(dst []byte) ([]byte, error) {
	if err := m.Check(); err != nil {
		return dst, err
	}
	flags := m.QoS
	if m.Retain {
		flags |= flagRetain
	}
	if !m.Expiry.IsZero() {
		flags |= flagExpiry
	}
	if m.PayloadFormat != nil {
		flags |= flagPayloadFormat
	}
	var opt byte
	if m.ContentType != "" {
		opt |= optContentType
	}
	if m.ResponseTopic != "" {
		opt |= optResponseTopic
	}
	if len(m.CorrelationData) > 0 {
		opt |= optCorrelation
	}
	if len(m.UserProperties) > 0 {
		opt |= optUserProps
	}
	if m.Origin != "" {
		opt |= optOrigin
	}
	if len(m.SubscriptionIDs) > 0 {
		opt |= optSubIDs
	}
	if !m.Created.IsZero() {
		opt |= optCreated
	}
	if len(m.Properties) > 0 {
		opt |= optProperties
	}
	dst = append(dst, messageVersion, flags, opt)
	dst = appendString(dst, m.Topic)
	dst = appendString(dst, string(m.Payload))
	if flags&flagExpiry != 0 {
		dst = binary.AppendVarint(dst, m.Expiry.UnixNano())
	}
	if flags&flagPayloadFormat != 0 {
		dst = append(dst, *m.PayloadFormat)
	}
	if opt&optContentType != 0 {
		dst = appendString(dst, m.ContentType)
	}
	if opt&optResponseTopic != 0 {
		dst = appendString(dst, m.ResponseTopic)
	}
	if opt&optCorrelation != 0 {
		dst = appendString(dst, string(m.CorrelationData))
	}
	if opt&optUserProps != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(m.UserProperties)))
		for _, p := range m.UserProperties {
			dst = appendString(dst, p.Key)
			dst = appendString(dst, p.Value)
		}
	}
	if opt&optOrigin != 0 {
		dst = appendString(dst, m.Origin)
	}
	if opt&optSubIDs != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(m.SubscriptionIDs)))
		for _, id := range m.SubscriptionIDs {
			dst = binary.AppendUvarint(dst, uint64(id))
		}
	}
	if opt&optCreated != 0 {
		dst = binary.AppendVarint(dst, m.Created.UnixNano())
	}
	if opt&optProperties != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(m.Properties)))
		for _, p := range m.Properties {
			dst = appendString(dst, p.Key)
			switch v := p.Value.(type) {
			case string:
				dst = append(dst, propString)
				dst = appendString(dst, v)
			case int64:
				dst = append(dst, propInt)
				dst = binary.AppendVarint(dst, v)
			case bool:
				b := byte(0)
				if v {
					b = 1
				}
				dst = append(dst, propBool, b)
			}
		}
	}
	return dst, nil
}

// MarshalBinary returns the binary form of m (encoding.BinaryMarshaler).
func (m *Message) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, m.sizeHint()))
}

// sizeHint is an upper bound of the encoded size, so MarshalBinary
// allocates once.
func (m *Message) sizeHint() int {
	const varint = 10 // binary.MaxVarintLen64
	n := 3 + 7*varint + 1 + len(m.Topic) + len(m.Payload) + len(m.ContentType) +
		len(m.ResponseTopic) + len(m.CorrelationData) + len(m.Origin) +
		(1+len(m.SubscriptionIDs))*5
	for _, p := range m.UserProperties {
		n += 2*varint + len(p.Key) + len(p.Value)
	}
	n += varint
	for _, p := range m.Properties {
		n += 2*varint + 1 + len(p.Key)
		if v, ok := p.Value.(string); ok {
			n += len(v)
		}
	}
	return n
}

// UnmarshalBinary sets m from its binary form (encoding.BinaryUnmarshaler).
// m shares no memory with data. Errors wrap ErrCorrupt.
func (m *Message) UnmarshalBinary(data []byte) error {
	// One copy for all byte fields: Payload and CorrelationData point into
	// it, capped so that appending to one cannot overwrite the other.
	r := reader{buf: bytes.Clone(data)}
	if v := r.Byte(); v != messageVersion && r.err == nil {
		return fmt.Errorf("%w: message version %d", ErrCorrupt, v)
	}
	flags, opt := r.Byte(), r.Byte()
	if r.err == nil && (flags&^flagsKnown != 0 || opt&^optKnown != 0 || flags&flagQoSMask > 2) {
		return fmt.Errorf("%w: message flags %#x %#x", ErrCorrupt, flags, opt)
	}
	*m = Message{
		Topic:   r.String(),
		Payload: r.Bytes(),
		QoS:     flags & flagQoSMask,
		Retain:  flags&flagRetain != 0,
	}
	if flags&flagExpiry != 0 {
		m.Expiry = time.Unix(0, r.Varint())
	}
	if flags&flagPayloadFormat != 0 {
		f := r.Byte()
		m.PayloadFormat = &f
	}
	if opt&optContentType != 0 {
		m.ContentType = r.String()
	}
	if opt&optResponseTopic != 0 {
		m.ResponseTopic = r.String()
	}
	if opt&optCorrelation != 0 {
		m.CorrelationData = r.Bytes()
	}
	if opt&optUserProps != 0 {
		n := r.Count(2) // a property takes at least two length bytes
		m.UserProperties = make([]UserProperty, 0, n)
		for range n {
			m.UserProperties = append(m.UserProperties, UserProperty{Key: r.String(), Value: r.String()})
		}
	}
	if opt&optOrigin != 0 {
		m.Origin = r.String()
	}
	if opt&optSubIDs != 0 {
		n := r.Count(1)
		m.SubscriptionIDs = make([]uint32, 0, n)
		for range n {
			m.SubscriptionIDs = append(m.SubscriptionIDs, r.Uint32())
		}
	}
	if opt&optCreated != 0 {
		m.Created = time.Unix(0, r.Varint())
	}
	if opt&optProperties != 0 {
		n := r.Count(3) // key length, type, value: at least three bytes
		m.Properties = make([]Property, 0, n)
		for range n {
			p := Property{Key: r.String()}
			switch t := r.Byte(); t {
			case propString:
				p.Value = r.String()
			case propInt:
				p.Value = r.Varint()
			case propBool:
				p.Value = r.Byte() != 0
			default:
				if r.err == nil {
					return fmt.Errorf("%w: property type %d", ErrCorrupt, t)
				}
			}
			m.Properties = append(m.Properties, p)
		}
	}
	return r.Done()
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
