package encoding

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every decoding error, so callers can map any
// of them to the amqp:decode-error condition with errors.Is.
var ErrMalformed = errors.New("amqp: malformed encoding")

var (
	errTruncated = fmt.Errorf("%w: truncated", ErrMalformed)
	errTooDeep   = fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, MaxDepth)
	errCount     = fmt.Errorf("%w: element count exceeds size", ErrMalformed)
)

// typeError reports an unexpected format code.
func typeError(want string, code byte) error {
	return fmt.Errorf("%w: want %s, got format code 0x%02x", ErrMalformed, want, code)
}

// Reader decodes AMQP values from a byte slice. The first error is sticky:
// once it is set, every method returns a zero value and Err reports it.
// The zero Reader reads nothing; use NewReader or Reset.
type Reader struct {
	b     []byte
	err   error
	depth int
}

// NewReader returns a Reader over b. Binary values it returns alias b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r read b, clearing any error.
func (r *Reader) Reset(b []byte) { *r = Reader{b: b} }

// Err returns the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Len returns the number of unread bytes in the current scope (the whole
// input, or the body of the list being read).
func (r *Reader) Len() int { return len(r.b) }

// Rest returns the unread bytes of the current scope without consuming them.
func (r *Reader) Rest() []byte { return r.b }

// Fail records err unless an error is already set.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
		r.b = nil
	}
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.Fail(errTruncated)
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

func (r *Reader) u8() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.Fail(errTruncated)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *Reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *Reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *Reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// Peek returns the next format code without consuming it, or 0 and no
// error at the end of the scope.
func (r *Reader) Peek() byte {
	if r.err != nil || len(r.b) == 0 {
		return 0
	}
	return r.b[0]
}

// Null consumes a null and reports true if the next value is null. At the
// end of the scope it reports true too, so that composite decoders treat
// a short list like trailing nulls.
func (r *Reader) Null() bool {
	if r.err != nil || len(r.b) == 0 {
		return true
	}
	if r.b[0] == CodeNull {
		r.b = r.b[1:]
		return true
	}
	return false
}

// Bool reads a boolean in any of its three encodings.
func (r *Reader) Bool() bool {
	switch c := r.u8(); c {
	case CodeTrue:
		return true
	case CodeFalse:
		return false
	case CodeBool:
		switch r.u8() {
		case 0:
			return false
		case 1:
			return true
		}
		r.Fail(fmt.Errorf("%w: boolean byte not 0 or 1", ErrMalformed))
	default:
		r.fail(typeError("boolean", c))
	}
	return false
}

// fail is Fail for errors found after a read of the constructor.
func (r *Reader) fail(err error) { r.Fail(err) }

// unsignedOf reads the payload of any unsigned type.
func (r *Reader) unsignedOf(c byte, want string) uint64 {
	switch c {
	case CodeUint0, CodeUlong0:
		return 0
	case CodeSmallUint, CodeSmallUlong, CodeUbyte:
		return uint64(r.u8())
	case CodeUshort:
		return uint64(r.u16())
	case CodeUint:
		return uint64(r.u32())
	case CodeUlong:
		return r.u64()
	}
	r.fail(typeError(want, c))
	return 0
}

// signedOf reads the payload of any signed integer type.
func (r *Reader) signedOf(c byte, want string) int64 {
	switch c {
	case CodeByte, CodeSmallInt, CodeSmallLong:
		return int64(int8(r.u8()))
	case CodeShort:
		return int64(int16(r.u16()))
	case CodeInt:
		return int64(int32(r.u32()))
	case CodeLong:
		return int64(r.u64())
	}
	r.fail(typeError(want, c))
	return 0
}

// Ubyte reads a ubyte.
func (r *Reader) Ubyte() uint8 {
	c := r.u8()
	if c != CodeUbyte {
		r.fail(typeError("ubyte", c))
		return 0
	}
	return r.u8()
}

// Ushort reads a ushort (or a ubyte, which widens losslessly).
func (r *Reader) Ushort() uint16 {
	c := r.u8()
	if c != CodeUshort && c != CodeUbyte {
		r.fail(typeError("ushort", c))
		return 0
	}
	return uint16(r.unsignedOf(c, "ushort"))
}

// Uint reads a uint in any encoding (narrower unsigned types widen).
func (r *Reader) Uint() uint32 {
	c := r.u8()
	if c == CodeUlong || c == CodeSmallUlong || c == CodeUlong0 {
		r.fail(typeError("uint", c))
		return 0
	}
	return uint32(r.unsignedOf(c, "uint"))
}

// Ulong reads a ulong in any encoding (narrower unsigned types widen).
func (r *Reader) Ulong() uint64 { return r.unsignedOf(r.u8(), "ulong") }

// Byte reads a byte.
func (r *Reader) Byte() int8 {
	c := r.u8()
	if c != CodeByte {
		r.fail(typeError("byte", c))
		return 0
	}
	return int8(r.u8())
}

// Short reads a short (or a byte).
func (r *Reader) Short() int16 {
	c := r.u8()
	if c != CodeShort && c != CodeByte {
		r.fail(typeError("short", c))
		return 0
	}
	return int16(r.signedOf(c, "short"))
}

// Int reads an int in any encoding (narrower signed types widen).
func (r *Reader) Int() int32 {
	c := r.u8()
	if c == CodeLong || c == CodeSmallLong {
		r.fail(typeError("int", c))
		return 0
	}
	return int32(r.signedOf(c, "int"))
}

// Long reads a long in any encoding (narrower signed types widen).
func (r *Reader) Long() int64 { return r.signedOf(r.u8(), "long") }

// Float reads a float.
func (r *Reader) Float() float32 {
	if c := r.u8(); c != CodeFloat {
		r.fail(typeError("float", c))
		return 0
	}
	return math.Float32frombits(r.u32())
}

// Double reads a double.
func (r *Reader) Double() float64 {
	if c := r.u8(); c != CodeDouble {
		r.fail(typeError("double", c))
		return 0
	}
	return math.Float64frombits(r.u64())
}

// Char reads a char.
func (r *Reader) Char() Char {
	if c := r.u8(); c != CodeChar {
		r.fail(typeError("char", c))
		return 0
	}
	return Char(r.u32())
}

// Timestamp reads a timestamp as a UTC time.
func (r *Reader) Timestamp() time.Time {
	if c := r.u8(); c != CodeTimestamp {
		r.fail(typeError("timestamp", c))
		return time.Time{}
	}
	return fromMillis(int64(r.u64()))
}

// UUID reads a uuid.
func (r *Reader) UUID() UUID {
	var u UUID
	if c := r.u8(); c != CodeUUID {
		r.fail(typeError("uuid", c))
		return u
	}
	copy(u[:], r.take(16))
	return u
}

func (r *Reader) varOf(c, code8, code32 byte, want string) []byte {
	switch c {
	case code8:
		return r.take(int(r.u8()))
	case code32:
		n := r.u32()
		if uint64(n) > uint64(len(r.b)) {
			r.Fail(errTruncated)
			return nil
		}
		return r.take(int(n))
	}
	r.fail(typeError(want, c))
	return nil
}

// Binary reads a binary value. The result aliases the input.
func (r *Reader) Binary() []byte {
	b := r.varOf(r.u8(), CodeVbin8, CodeVbin32, "binary")
	if b == nil && r.err == nil {
		b = []byte{}
	}
	return b
}

// String reads a string. Invalid UTF-8 is an error.
func (r *Reader) String() string {
	return r.stringOf(r.u8())
}

func (r *Reader) stringOf(c byte) string {
	b := r.varOf(c, CodeStr8, CodeStr32, "string")
	if !utf8.Valid(b) {
		r.Fail(fmt.Errorf("%w: string is not UTF-8", ErrMalformed))
		return ""
	}
	return string(b)
}

// Symbol reads a symbol.
func (r *Reader) Symbol() Symbol {
	return Symbol(r.varOf(r.u8(), CodeSym8, CodeSym32, "symbol"))
}

// Symbols reads a "multiple" symbol field: null (nil), one symbol, or an
// array of symbols.
func (r *Reader) Symbols() []Symbol {
	if r.Null() {
		return nil
	}
	switch c := r.Peek(); c {
	case CodeSym8, CodeSym32:
		return []Symbol{r.Symbol()}
	case CodeArray8, CodeArray32:
		n, elem, rest := r.ArrayStart()
		defer r.End(rest)
		if elem.Descriptor != nil || (elem.Code != CodeSym8 && elem.Code != CodeSym32) {
			r.fail(typeError("symbol array", elem.Code))
			return nil
		}
		out := make([]Symbol, 0, n)
		for range n {
			out = append(out, Symbol(r.varOf(elem.Code, CodeSym8, CodeSym32, "symbol")))
		}
		return out
	default:
		r.fail(typeError("symbol or array of symbol", c))
		return nil
	}
}

// Descriptor reads the constructor of a described value and a numeric
// descriptor, returning the code. Symbolic descriptors are an error.
func (r *Reader) Descriptor() uint64 {
	if c := r.u8(); c != CodeDescribed {
		r.fail(typeError("described type", c))
		return 0
	}
	return r.Ulong()
}

// ListStart enters a list and returns its element count and the bytes that
// follow it. Reads then stay within the list body until End(rest). Unread
// elements are skipped by End.
func (r *Reader) ListStart() (n int, rest []byte) {
	c := r.u8()
	switch c {
	case CodeList0, CodeList8, CodeList32:
		return r.compound(c)
	}
	r.fail(typeError("list", c))
	return 0, nil
}

// MapStart enters a map and returns its number of key/value pairs.
func (r *Reader) MapStart() (pairs int, rest []byte) {
	c := r.u8()
	if c != CodeMap8 && c != CodeMap32 {
		r.fail(typeError("map", c))
		return 0, nil
	}
	n, rest := r.compound(c)
	if n%2 != 0 {
		r.Fail(fmt.Errorf("%w: map with odd element count", ErrMalformed))
		return 0, nil
	}
	return n / 2, rest
}

// compound reads the size and count of a list or map whose constructor c
// has been consumed, and narrows the reader to its body.
func (r *Reader) compound(c byte) (n int, rest []byte) {
	var body []byte
	switch c {
	case CodeList0:
		r.depth++
		rest, r.b = r.b, nil
		return 0, rest
	case CodeList8, CodeMap8, CodeArray8:
		body = r.take(int(r.u8()))
		if len(body) < 1 {
			r.Fail(errTruncated)
			return 0, nil
		}
		n, body = int(body[0]), body[1:]
	default: // 32-bit forms
		size := r.u32()
		if uint64(size) > uint64(len(r.b)) || size < 4 {
			r.Fail(errTruncated)
			return 0, nil
		}
		body = r.take(int(size))
		cnt := binary.BigEndian.Uint32(body)
		if uint64(cnt) > uint64(len(body)) && c != CodeArray32 {
			r.Fail(errCount)
			return 0, nil
		}
		n, body = int(cnt), body[4:]
	}
	if r.err != nil {
		return 0, nil
	}
	// Every list or map element takes at least one byte, so a count larger
	// than the body is a lie; checking it bounds any allocation by input size.
	if c != CodeArray8 && c != CodeArray32 && n > len(body) {
		r.Fail(errCount)
		return 0, nil
	}
	r.depth++
	if r.depth > MaxDepth {
		r.Fail(errTooDeep)
		return 0, nil
	}
	rest, r.b = r.b, body
	return n, rest
}

// End leaves the compound value entered by ListStart, MapStart or
// ArrayStart.
func (r *Reader) End(rest []byte) {
	r.depth--
	if r.err == nil {
		r.b = rest
	}
}

// Constructor is an array's element constructor.
type Constructor struct {
	Code       byte
	Descriptor any // non-nil for arrays of described values
}

// zeroWidth reports whether values of format code c have no payload.
func zeroWidth(c byte) bool { return c>>4 == 4 }

// maxZeroWidthElems caps arrays of payload-free elements (nulls, uint0...),
// the one case where the element count is not bounded by the input size.
const maxZeroWidthElems = 1 << 16

// ArrayStart enters an array and returns its element count and element
// constructor. Elements are then read with ArrayElem.
func (r *Reader) ArrayStart() (n int, elem Constructor, rest []byte) {
	return r.arrayStartOf(r.u8())
}

func (r *Reader) arrayStartOf(c byte) (n int, elem Constructor, rest []byte) {
	if c != CodeArray8 && c != CodeArray32 {
		r.fail(typeError("array", c))
		return 0, elem, nil
	}
	n, rest = r.compound(c)
	elem.Code = r.u8()
	if elem.Code == CodeDescribed {
		elem.Descriptor = r.Value()
		elem.Code = r.u8()
	}
	if r.err != nil {
		return 0, elem, nil
	}
	if !validCode(elem.Code) || elem.Code == CodeDescribed {
		r.Fail(typeError("array element constructor", elem.Code))
		return 0, elem, nil
	}
	limit := len(r.b)
	if zeroWidth(elem.Code) {
		limit = maxZeroWidthElems
	}
	if n > limit {
		r.Fail(errCount)
		return 0, elem, nil
	}
	return n, elem, rest
}

// ArrayElem reads one array element of the given constructor.
func (r *Reader) ArrayElem(elem Constructor) any {
	v := r.valueOf(elem.Code)
	if elem.Descriptor != nil {
		return Described{Descriptor: elem.Descriptor, Value: v}
	}
	return v
}
