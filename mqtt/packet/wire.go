package packet

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

// reader decodes the primitive data types of MQTT section 1.5 from a packet
// body. It keeps the first error (sticky), returns zero values afterwards,
// and decoders check r.err once rather than after every field.
type reader struct {
	b   []byte
	off int
	t   Type // for error messages
	err *Error
}

// fail records the first error.
func (r *reader) fail(e *Error) {
	if r.err == nil {
		r.err = e
	}
}

// truncated records a field that runs past the end of the body: the
// Remaining Length disagrees with the contents [MQTT-2.1.4] (MalformedPacket).
func (r *reader) truncated(field string) {
	if r.err == nil {
		r.err = errorf(MalformedPacket, "%v: %s: truncated at byte %d of %d", r.t, field, r.off, len(r.b))
	}
}

func (r *reader) len() int { return len(r.b) - r.off }

func (r *reader) byte(field string) byte {
	if r.err != nil || r.len() < 1 {
		r.truncated(field)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) uint16(field string) uint16 {
	if r.err != nil || r.len() < 2 {
		r.truncated(field)
		return 0
	}
	n := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return n
}

func (r *reader) uint32(field string) uint32 {
	if r.err != nil || r.len() < 4 {
		r.truncated(field)
		return 0
	}
	n := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return n
}

// varInt reads a variable byte integer of at most 4 bytes [MQTT-1.5.5-1].
func (r *reader) varInt(field string) uint32 {
	var n uint32
	for i := 0; i < 4; i++ {
		c := r.byte(field)
		if r.err != nil {
			return 0
		}
		n |= uint32(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			return n
		}
	}
	r.fail(errorf(MalformedPacket, "%v: %s: variable byte integer longer than 4 bytes", r.t, field))
	return 0
}

// binary reads Binary Data (two-byte length + bytes) [MQTT-1.5.6]. The
// result aliases the body; an empty value is returned as nil so that decoded
// packets compare equal whatever the input buffer.
func (r *reader) binary(field string) []byte {
	n := int(r.uint16(field))
	if r.err != nil || r.len() < n {
		r.truncated(field)
		return nil
	}
	if n == 0 {
		return nil
	}
	b := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

// stringBytes reads a UTF-8 Encoded String without copying it.
func (r *reader) stringBytes(field string) []byte {
	b := r.binary(field)
	if r.err == nil {
		if e := checkUTF8(b, r.t, field); e != nil {
			r.fail(e)
			return nil
		}
	}
	return b
}

// string reads a UTF-8 Encoded String and copies it.
func (r *reader) string(field string) string {
	return string(r.stringBytes(field))
}

// rest returns the unread bytes (aliased), nil when there are none.
func (r *reader) rest() []byte {
	if r.err != nil || r.len() == 0 {
		return nil
	}
	b := r.b[r.off:len(r.b):len(r.b)]
	r.off = len(r.b)
	return b
}

// end reports trailing bytes: the Remaining Length must match the contents.
func (r *reader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.err = errorf(MalformedPacket, "%v: %d trailing bytes", r.t, len(r.b)-r.off)
	}
}

// checkUTF8 enforces the UTF-8 Encoded String rules: well-formed UTF-8
// (which excludes the surrogates U+D800..U+DFFF) [MQTT-1.5.4-1] and no
// U+0000 [MQTT-1.5.4-2]. Both are Malformed Packet.
func checkUTF8(b []byte, t Type, field string) *Error {
	if bytes.IndexByte(b, 0) >= 0 {
		return errorf(MalformedPacket, "%v: %s: contains U+0000", t, field)
	}
	if !utf8.Valid(b) {
		return errorf(MalformedPacket, "%v: %s: not well-formed UTF-8", t, field)
	}
	return nil
}

// checkString is checkUTF8 for encoders, plus the 16-bit length prefix.
func checkString(s string, t Type, field string) *Error {
	if len(s) > 65535 {
		return errorf(MalformedPacket, "%v: %s: %d bytes, more than 65535", t, field, len(s))
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errorf(MalformedPacket, "%v: %s: contains U+0000", t, field)
	}
	if !utf8.ValidString(s) {
		return errorf(MalformedPacket, "%v: %s: not well-formed UTF-8", t, field)
	}
	return nil
}

// sizer adds up the size of a packet's fields before it is written, checking
// on the way that every field can be encoded. Like reader, it keeps the
// first error.
type sizer struct {
	n   int
	t   Type
	err *Error
}

func (s *sizer) fail(e *Error) {
	if s.err == nil {
		s.err = e
	}
}

// str counts a UTF-8 Encoded String.
func (s *sizer) str(v, field string) {
	if e := checkString(v, s.t, field); e != nil {
		s.fail(e)
	}
	s.n += 2 + len(v)
}

// bin counts Binary Data.
func (s *sizer) bin(v []byte, field string) {
	if len(v) > 65535 {
		s.fail(errorf(MalformedPacket, "%v: %s: %d bytes, more than 65535", s.t, field, len(v)))
	}
	s.n += 2 + len(v)
}

// remaining returns the Remaining Length, or the first error, or an error
// when the packet is too large for the 4-byte Remaining Length.
func (s *sizer) remaining() (int, *Error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.n > MaxVarInt {
		return 0, errorf(PacketTooLarge, "%v: remaining length %d exceeds %d", s.t, s.n, MaxVarInt)
	}
	return s.n, nil
}

func appendUint16(dst []byte, n uint16) []byte { return append(dst, byte(n>>8), byte(n)) }

func appendUint32(dst []byte, n uint32) []byte {
	return append(dst, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendString appends a string or binary value with its length prefix;
// its length was checked by a sizer.
func appendString[S string | []byte](dst []byte, s S) []byte {
	return append(appendUint16(dst, uint16(len(s))), s...)
}

// Byte classes for checkTopicName.
const (
	classNUL      = 1 << iota // U+0000 [MQTT-1.5.4-2]
	classWildcard             // '+' or '#'
	classNonASCII             // needs full UTF-8 validation
)

var topicByteClass = func() (c [256]byte) {
	c[0] = classNUL
	c['+'], c['#'] = classWildcard, classWildcard
	for b := utf8.RuneSelf; b < 256; b++ {
		c[b] = classNonASCII
	}
	return c
}()

// checkTopicName checks a topic name (PUBLISH, will topic): U+0000 and
// ill-formed UTF-8 are Malformed Packet [MQTT-1.5.4-1] [MQTT-1.5.4-2], a
// wildcard is Topic Name invalid [MQTT-3.3.2-2]. The empty topic is the caller's business (it is
// valid in v5 with a Topic Alias). It is on the PUBLISH hot path, so one
// branch-free pass ORs the byte classes and only a topic with something
// unusual pays for a closer look.
func checkTopicName(t Type, field, s string) *Error {
	var seen byte
	for i := 0; i < len(s); i++ {
		seen |= topicByteClass[s[i]]
	}
	switch {
	case seen == 0:
		return nil
	case seen&classNUL != 0:
		return errorf(MalformedPacket, "%v: %s: contains U+0000", t, field)
	case seen&classNonASCII != 0 && !utf8.ValidString(s):
		return errorf(MalformedPacket, "%v: %s: not well-formed UTF-8", t, field)
	case seen&classWildcard != 0:
		return errorf(TopicNameInvalid, "%v: %s: wildcard in %q", t, field, s)
	}
	return nil
}
