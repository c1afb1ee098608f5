package encoding

import (
	"encoding/hex"
	"time"
)

// Format codes, AMQP 1.0 part 1, section 1.6.
const (
	CodeDescribed  byte = 0x00
	CodeNull       byte = 0x40
	CodeTrue       byte = 0x41
	CodeFalse      byte = 0x42
	CodeBool       byte = 0x56
	CodeUbyte      byte = 0x50
	CodeUshort     byte = 0x60
	CodeUint       byte = 0x70
	CodeSmallUint  byte = 0x52
	CodeUint0      byte = 0x43
	CodeUlong      byte = 0x80
	CodeSmallUlong byte = 0x53
	CodeUlong0     byte = 0x44
	CodeByte       byte = 0x51
	CodeShort      byte = 0x61
	CodeInt        byte = 0x71
	CodeSmallInt   byte = 0x54
	CodeLong       byte = 0x81
	CodeSmallLong  byte = 0x55
	CodeFloat      byte = 0x72
	CodeDouble     byte = 0x82
	CodeDecimal32  byte = 0x74
	CodeDecimal64  byte = 0x84
	CodeDecimal128 byte = 0x94
	CodeChar       byte = 0x73
	CodeTimestamp  byte = 0x83
	CodeUUID       byte = 0x98
	CodeVbin8      byte = 0xa0
	CodeVbin32     byte = 0xb0
	CodeStr8       byte = 0xa1
	CodeStr32      byte = 0xb1
	CodeSym8       byte = 0xa3
	CodeSym32      byte = 0xb3
	CodeList0      byte = 0x45
	CodeList8      byte = 0xc0
	CodeList32     byte = 0xd0
	CodeMap8       byte = 0xc1
	CodeMap32      byte = 0xd1
	CodeArray8     byte = 0xe0
	CodeArray32    byte = 0xf0
)

// MaxDepth bounds the nesting of compound and described values the Reader
// accepts, so that hostile input cannot exhaust the goroutine stack.
const MaxDepth = 32

// Symbol is the AMQP symbol type: ASCII, used for names and keys.
type Symbol string

// UUID is the AMQP uuid type (RFC 4122 byte order).
type UUID [16]byte

// String formats u in the canonical 8-4-4-4-12 form.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// Char is the AMQP char type: one UTF-32 code point.
type Char rune

// Decimal32, Decimal64 and Decimal128 hold IEEE 754-2008 decimal values as
// their raw big-endian bytes; Ferry only carries them.
type (
	Decimal32  [4]byte
	Decimal64  [8]byte
	Decimal128 [16]byte
)

// Described is a value with a descriptor (part 1, section 1.2). The
// descriptor is a uint64 code or a Symbol.
type Described struct {
	Descriptor any
	Value      any
}

// MapEntry is one key/value pair of a Map.
type MapEntry struct {
	Key   any
	Value any
}

// Map is an AMQP map in wire order. A slice rather than a Go map because
// AMQP keys may be binary or lists, which Go maps cannot hold.
type Map []MapEntry

// Get returns the value for key, comparing with ==; keys that are not
// comparable (binary, lists) never match.
func (m Map) Get(key any) (any, bool) {
	for _, e := range m {
		if comparableEqual(e.Key, key) {
			return e.Value, true
		}
	}
	return nil, false
}

func comparableEqual(a, b any) bool {
	switch a.(type) {
	case []byte, []any, Map, Array, Described:
		return false
	}
	switch b.(type) {
	case []byte, []any, Map, Array, Described:
		return false
	}
	return a == b
}

// Array is an AMQP array: every element has the same type. Code is the
// element constructor (for example CodeSym8); when encoding, a zero Code
// lets AppendValue pick it from the first element. Descriptor is set for
// arrays of described values.
type Array struct {
	Code       byte
	Descriptor any
	Elems      []any
}

// timestamp conversions keep millisecond precision, as the wire does.
func toMillis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
