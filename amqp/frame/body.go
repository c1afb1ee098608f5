package frame

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/amqp/encoding"
)

// Descriptor codes of the composite types (the low 32 bits; the domain,
// 0x00000000, is AMQP's).
const (
	codeOpen        uint64 = 0x10
	codeBegin       uint64 = 0x11
	codeAttach      uint64 = 0x12
	codeFlow        uint64 = 0x13
	codeTransfer    uint64 = 0x14
	codeDisposition uint64 = 0x15
	codeDetach      uint64 = 0x16
	codeEnd         uint64 = 0x17
	codeClose       uint64 = 0x18
	codeError       uint64 = 0x1d
	codeReceived    uint64 = 0x23
	codeAccepted    uint64 = 0x24
	codeRejected    uint64 = 0x25
	codeReleased    uint64 = 0x26
	codeModified    uint64 = 0x27
	codeSource      uint64 = 0x28
	codeTarget      uint64 = 0x29
	codeMechanisms  uint64 = 0x40
	codeInit        uint64 = 0x41
	codeChallenge   uint64 = 0x42
	codeResponse    uint64 = 0x43
	codeOutcome     uint64 = 0x44
)

// Body is a frame body: a performative or a SASL frame. The interface is
// sealed; the types of this package are its only implementations.
type Body interface {
	// AppendBody appends the encoded body (without frame header).
	AppendBody(dst []byte) ([]byte, error)
	body()
}

// ErrDecode is wrapped by errors about undecodable frame bodies, which map
// to the amqp:decode-error condition. It wraps encoding.ErrMalformed too.
var ErrDecode = fmt.Errorf("amqp: decode error: %w", encoding.ErrMalformed)

func decodeErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrDecode}, args...)...)
}

// DecodeBody decodes the body of a frame of type t (the bytes after the
// extended header). An empty body is a heartbeat and decodes to nil.
// Binary fields and Transfer.Payload alias b.
func DecodeBody(t Type, b []byte) (Body, error) {
	if len(b) == 0 {
		if t == TypeSASL {
			return nil, decodeErr("empty SASL frame")
		}
		return nil, nil
	}
	r := encoding.NewReader(b)
	code := r.Descriptor()
	if err := r.Err(); err != nil {
		return nil, errors.Join(ErrDecode, err)
	}
	var body interface {
		Body
		decode(r *encoding.Reader) error
	}
	switch {
	case t == TypeAMQP && code == codeOpen:
		body = new(Open)
	case t == TypeAMQP && code == codeBegin:
		body = new(Begin)
	case t == TypeAMQP && code == codeAttach:
		body = new(Attach)
	case t == TypeAMQP && code == codeFlow:
		body = new(Flow)
	case t == TypeAMQP && code == codeTransfer:
		body = new(Transfer)
	case t == TypeAMQP && code == codeDisposition:
		body = new(Disposition)
	case t == TypeAMQP && code == codeDetach:
		body = new(Detach)
	case t == TypeAMQP && code == codeEnd:
		body = new(End)
	case t == TypeAMQP && code == codeClose:
		body = new(Close)
	case t == TypeSASL && code == codeMechanisms:
		body = new(SASLMechanisms)
	case t == TypeSASL && code == codeInit:
		body = new(SASLInit)
	case t == TypeSASL && code == codeChallenge:
		body = new(SASLChallenge)
	case t == TypeSASL && code == codeResponse:
		body = new(SASLResponse)
	case t == TypeSASL && code == codeOutcome:
		body = new(SASLOutcome)
	default:
		return nil, decodeErr("unknown body descriptor 0x%x for frame type %d", code, t)
	}
	if err := body.decode(r); err != nil {
		return nil, err
	}
	if r.Err() != nil {
		return nil, errors.Join(ErrDecode, r.Err())
	}
	return body, nil
}

// fields writes a composite: a descriptor and a list of fields. Absent
// fields are written as null and trailing nulls are dropped.
type fields struct {
	dst []byte
	l   encoding.ListBuilder
	err error
}

func startFields(dst []byte, code uint64) fields {
	f := fields{}
	f.dst, f.l = encoding.StartList(encoding.AppendDescriptor(dst, code))
	return f
}

func (f *fields) mark()                { f.l.Mark(f.dst) }
func (f *fields) null()                { f.dst = f.l.Null(f.dst) }
func (f *fields) end() ([]byte, error) { return f.l.End(f.dst), f.err }

func (f *fields) str(s string) { // "" is absent
	if s == "" {
		f.null()
		return
	}
	f.dst = encoding.AppendString(f.dst, s)
	f.mark()
}

func (f *fields) strAlways(s string) {
	f.dst = encoding.AppendString(f.dst, s)
	f.mark()
}

func (f *fields) sym(s encoding.Symbol) {
	if s == "" {
		f.null()
		return
	}
	f.dst = encoding.AppendSymbol(f.dst, s)
	f.mark()
}

func (f *fields) binary(b []byte) {
	if b == nil {
		f.null()
		return
	}
	f.dst = encoding.AppendBinary(f.dst, b)
	f.mark()
}

func (f *fields) uint(v uint32) {
	f.dst = encoding.AppendUint(f.dst, v)
	f.mark()
}

// uintDef writes v, or null when v is the field's default.
func (f *fields) uintDef(v, def uint32) {
	if v == def {
		f.null()
		return
	}
	f.uint(v)
}

func (f *fields) optUint(p *uint32) {
	if p == nil {
		f.null()
		return
	}
	f.uint(*p)
}

func (f *fields) ulong(v uint64) {
	f.dst = encoding.AppendUlong(f.dst, v)
	f.mark()
}

func (f *fields) ushort(v uint16) {
	f.dst = encoding.AppendUshort(f.dst, v)
	f.mark()
}

func (f *fields) ubyte(v uint8) {
	f.dst = encoding.AppendUbyte(f.dst, v)
	f.mark()
}

// bool writes false as null: every boolean field defaults to false.
func (f *fields) bool(v bool) {
	if !v {
		f.null()
		return
	}
	f.dst = encoding.AppendBool(f.dst, true)
	f.mark()
}

func (f *fields) boolAlways(v bool) {
	f.dst = encoding.AppendBool(f.dst, v)
	f.mark()
}

func (f *fields) symbols(s []encoding.Symbol) {
	if len(s) == 0 {
		f.null()
		return
	}
	f.dst = encoding.AppendSymbolArray(f.dst, s)
	f.mark()
}

func (f *fields) value(v any) {
	if v == nil {
		f.null()
		return
	}
	var err error
	f.dst, err = encoding.AppendValue(f.dst, v)
	if err != nil && f.err == nil {
		f.err = err
	}
	f.mark()
}

func (f *fields) symMap(m map[encoding.Symbol]any) {
	if m == nil {
		f.null()
		return
	}
	f.value(m)
}

// composite writes a nested composite (an error, a source...) or null.
func (f *fields) composite(c interface {
	AppendBody(dst []byte) ([]byte, error)
}, present bool) {
	if !present {
		f.null()
		return
	}
	var err error
	f.dst, err = c.AppendBody(f.dst)
	if err != nil && f.err == nil {
		f.err = err
	}
	f.mark()
}

// listFields iterates over the fields of a composite whose descriptor has
// been read: fn is called for each non-null field with its index, and must
// consume exactly that field. It returns a bit set of the fields seen.
func listFields(r *encoding.Reader, fn func(i int)) uint64 {
	n, rest := r.ListStart()
	var seen uint64
	for i := 0; i < n && r.Err() == nil; i++ {
		if r.Null() {
			continue
		}
		if i < 64 {
			seen |= 1 << i
		}
		fn(i)
	}
	r.End(rest)
	return seen
}

// requireFields checks that the mandatory fields in mask were present.
func requireFields(r *encoding.Reader, name string, seen, mask uint64) error {
	if r.Err() != nil {
		return errors.Join(ErrDecode, r.Err())
	}
	if seen&mask != mask {
		return decodeErr("%s: mandatory field missing (fields present %b, required %b)", name, seen, mask)
	}
	return nil
}

// symMap reads a map with symbol keys (fields, filter-sets, annotations
// with symbol keys only), or nil for null.
func readSymMap(r *encoding.Reader) map[encoding.Symbol]any {
	pairs, rest := r.MapStart()
	m := make(map[encoding.Symbol]any, pairs)
	for range pairs {
		k := r.Symbol()
		m[k] = r.Value()
	}
	r.End(rest)
	return m
}

func optUint(v uint32) *uint32 { return &v }

// readAddress reads an address: a string, or a symbol, which some peers
// send.
func readAddress(r *encoding.Reader) string {
	switch r.Peek() {
	case encoding.CodeSym8, encoding.CodeSym32:
		s := string(r.Symbol())
		if !utf8.ValidString(s) {
			r.Fail(decodeErr("address is not UTF-8"))
		}
		return s
	}
	return r.String()
}
