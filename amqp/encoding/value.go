package encoding

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"time"
)

// validCode reports whether c is a defined format code.
func validCode(c byte) bool {
	switch c {
	case CodeDescribed, CodeNull, CodeTrue, CodeFalse, CodeBool,
		CodeUbyte, CodeUshort, CodeUint, CodeSmallUint, CodeUint0,
		CodeUlong, CodeSmallUlong, CodeUlong0,
		CodeByte, CodeShort, CodeInt, CodeSmallInt, CodeLong, CodeSmallLong,
		CodeFloat, CodeDouble, CodeDecimal32, CodeDecimal64, CodeDecimal128,
		CodeChar, CodeTimestamp, CodeUUID,
		CodeVbin8, CodeVbin32, CodeStr8, CodeStr32, CodeSym8, CodeSym32,
		CodeList0, CodeList8, CodeList32, CodeMap8, CodeMap32, CodeArray8, CodeArray32:
		return true
	}
	return false
}

// Value reads any value and returns it as the Go type AppendValue takes for
// it: nil, bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64,
// float32, float64, Decimal32/64/128, Char, time.Time, UUID, []byte
// (aliasing the input), string, Symbol, []any (list), Map, Array or
// Described.
func (r *Reader) Value() any { return r.valueOf(r.u8()) }

func (r *Reader) valueOf(c byte) any {
	if r.err != nil {
		return nil
	}
	switch c {
	case CodeDescribed:
		r.depth++
		defer func() { r.depth-- }()
		if r.depth > MaxDepth {
			r.Fail(errTooDeep)
			return nil
		}
		d := r.Value()
		v := r.Value()
		if r.err != nil {
			return nil
		}
		return Described{Descriptor: d, Value: v}
	case CodeNull:
		return nil
	case CodeTrue:
		return true
	case CodeFalse:
		return false
	case CodeBool:
		b := r.u8()
		if b > 1 {
			r.Fail(fmt.Errorf("%w: boolean byte not 0 or 1", ErrMalformed))
		}
		return b == 1
	case CodeUbyte:
		return r.u8()
	case CodeUshort:
		return r.u16()
	case CodeUint, CodeSmallUint, CodeUint0:
		return uint32(r.unsignedOf(c, "uint"))
	case CodeUlong, CodeSmallUlong, CodeUlong0:
		return r.unsignedOf(c, "ulong")
	case CodeByte:
		return int8(r.u8())
	case CodeShort:
		return int16(r.u16())
	case CodeInt, CodeSmallInt:
		return int32(r.signedOf(c, "int"))
	case CodeLong, CodeSmallLong:
		return r.signedOf(c, "long")
	case CodeFloat:
		return math.Float32frombits(r.u32())
	case CodeDouble:
		return math.Float64frombits(r.u64())
	case CodeDecimal32:
		var d Decimal32
		copy(d[:], r.take(4))
		return d
	case CodeDecimal64:
		var d Decimal64
		copy(d[:], r.take(8))
		return d
	case CodeDecimal128:
		var d Decimal128
		copy(d[:], r.take(16))
		return d
	case CodeChar:
		return Char(r.u32())
	case CodeTimestamp:
		return fromMillis(int64(r.u64()))
	case CodeUUID:
		var u UUID
		copy(u[:], r.take(16))
		return u
	case CodeVbin8, CodeVbin32:
		b := r.varOf(c, CodeVbin8, CodeVbin32, "binary")
		if b == nil {
			b = []byte{}
		}
		return b
	case CodeStr8, CodeStr32:
		return r.stringOf(c)
	case CodeSym8, CodeSym32:
		return Symbol(r.varOf(c, CodeSym8, CodeSym32, "symbol"))
	case CodeList0, CodeList8, CodeList32:
		n, rest := r.compound(c)
		defer r.End(rest)
		l := make([]any, 0, n)
		for range n {
			l = append(l, r.Value())
		}
		r.expectEnd()
		if r.err != nil {
			return nil
		}
		return l
	case CodeMap8, CodeMap32:
		n, rest := r.compound(c)
		defer r.End(rest)
		if n%2 != 0 {
			r.Fail(fmt.Errorf("%w: map with odd element count", ErrMalformed))
			return nil
		}
		m := make(Map, 0, n/2)
		for range n / 2 {
			k := r.Value()
			m = append(m, MapEntry{Key: k, Value: r.Value()})
		}
		r.expectEnd()
		if r.err != nil {
			return nil
		}
		return m
	case CodeArray8, CodeArray32:
		return r.array(c)
	}
	r.Fail(typeError("a value", c))
	return nil
}

func (r *Reader) array(c byte) any {
	n, elem, rest := r.arrayStartOf(c)
	defer r.End(rest)
	a := Array{Code: elem.Code, Descriptor: elem.Descriptor, Elems: make([]any, 0, n)}
	for range n {
		a.Elems = append(a.Elems, r.valueOf(elem.Code))
	}
	r.expectEnd()
	if r.err != nil {
		return nil
	}
	return a
}

// expectEnd fails unless the current compound body has been read whole.
func (r *Reader) expectEnd() {
	if r.err == nil && len(r.b) != 0 {
		r.Fail(fmt.Errorf("%w: %d bytes after the last element", ErrMalformed, len(r.b)))
	}
}

// Skip reads past one value without allocating.
func (r *Reader) Skip() { r.skipOf(r.u8()) }

func (r *Reader) skipOf(c byte) {
	if r.err != nil {
		return
	}
	if !validCode(c) {
		r.Fail(typeError("a value", c))
		return
	}
	switch c >> 4 {
	case 0: // described
		r.depth++
		if r.depth > MaxDepth {
			r.Fail(errTooDeep)
			return
		}
		r.Skip()
		r.Skip()
		r.depth--
	case 4:
	case 5:
		r.take(1)
	case 6:
		r.take(2)
	case 7:
		r.take(4)
	case 8:
		r.take(8)
	case 9:
		r.take(16)
	case 0xa, 0xc, 0xe:
		r.take(int(r.u8()))
	case 0xb, 0xd, 0xf:
		n := r.u32()
		if uint64(n) > uint64(len(r.b)) {
			r.Fail(errTruncated)
			return
		}
		r.take(int(n))
	}
}

// AppendValue appends v in the smallest encoding of its AMQP type. The Go
// types are those Reader.Value returns, plus int (long), uint (ulong),
// map[string]any and map[Symbol]any (encoded with sorted keys so output is
// deterministic), map[any]any, []Symbol (array of symbol) and []string
// (list of strings). Any other type is an error.
func AppendValue(dst []byte, v any) ([]byte, error) {
	return appendValue(dst, v, 0)
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, errTooDeep
	}
	var err error
	switch v := v.(type) {
	case nil:
		return AppendNull(dst), nil
	case bool:
		return AppendBool(dst, v), nil
	case uint8:
		return AppendUbyte(dst, v), nil
	case uint16:
		return AppendUshort(dst, v), nil
	case uint32:
		return AppendUint(dst, v), nil
	case uint64:
		return AppendUlong(dst, v), nil
	case uint:
		return AppendUlong(dst, uint64(v)), nil
	case int8:
		return AppendByte(dst, v), nil
	case int16:
		return AppendShort(dst, v), nil
	case int32:
		return AppendInt(dst, v), nil
	case int64:
		return AppendLong(dst, v), nil
	case int:
		return AppendLong(dst, int64(v)), nil
	case float32:
		return AppendFloat(dst, v), nil
	case float64:
		return AppendDouble(dst, v), nil
	case Decimal32:
		return AppendDecimal32(dst, v), nil
	case Decimal64:
		return AppendDecimal64(dst, v), nil
	case Decimal128:
		return AppendDecimal128(dst, v), nil
	case Char:
		return AppendChar(dst, v), nil
	case time.Time:
		return AppendTimestamp(dst, v), nil
	case UUID:
		return AppendUUID(dst, v), nil
	case []byte:
		return AppendBinary(dst, v), nil
	case string:
		return AppendString(dst, v), nil
	case Symbol:
		return AppendSymbol(dst, v), nil
	case []Symbol:
		return AppendSymbolArray(dst, v), nil
	case []string:
		dst, l := StartList(dst)
		for _, s := range v {
			dst = AppendString(dst, s)
			l.Mark(dst)
		}
		return l.End(dst), nil
	case []any:
		dst, l := StartList(dst)
		for _, e := range v {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
			l.Mark(dst)
		}
		return l.End(dst), nil
	case Map:
		dst, m := StartMap(dst)
		for _, e := range v {
			if dst, err = appendValue(dst, e.Key, depth+1); err != nil {
				return dst, err
			}
			if dst, err = appendValue(dst, e.Value, depth+1); err != nil {
				return dst, err
			}
		}
		return m.End(dst, len(v)), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst, m := StartMap(dst)
		for _, k := range keys {
			dst = AppendString(dst, k)
			if dst, err = appendValue(dst, v[k], depth+1); err != nil {
				return dst, err
			}
		}
		return m.End(dst, len(v)), nil
	case map[Symbol]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, string(k))
		}
		sort.Strings(keys)
		dst, m := StartMap(dst)
		for _, k := range keys {
			dst = AppendSymbol(dst, Symbol(k))
			if dst, err = appendValue(dst, v[Symbol(k)], depth+1); err != nil {
				return dst, err
			}
		}
		return m.End(dst, len(v)), nil
	case map[any]any:
		dst, m := StartMap(dst)
		for k, e := range v {
			if dst, err = appendValue(dst, k, depth+1); err != nil {
				return dst, err
			}
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return m.End(dst, len(v)), nil
	case Described:
		dst = append(dst, CodeDescribed)
		if dst, err = appendValue(dst, v.Descriptor, depth+1); err != nil {
			return dst, err
		}
		return appendValue(dst, v.Value, depth+1)
	case Array:
		return appendArray(dst, v, depth)
	}
	return dst, fmt.Errorf("amqp: cannot encode Go type %T", v)
}

// appendArray encodes a generic Array. Elements are encoded on their own
// first: when they share a format code, that code is the element
// constructor; otherwise all are widened to the fixed form (smalluint and
// uint0 to uint, str8 to str32...). Code is used only for empty arrays.
func appendArray(dst []byte, a Array, depth int) ([]byte, error) {
	encs := make([][]byte, len(a.Elems))
	code := a.Code
	same := true
	for i, e := range a.Elems {
		if d, ok := e.(Described); ok && a.Descriptor != nil {
			e = d.Value
		}
		enc, err := appendValue(nil, e, depth+1)
		if err != nil {
			return dst, err
		}
		encs[i] = enc
		if i == 0 {
			code = enc[0]
		} else if enc[0] != code {
			same = false
		}
	}
	if code == 0 && len(a.Elems) == 0 {
		return dst, fmt.Errorf("amqp: empty Array needs a Code")
	}
	if !same {
		code = wideCode(code)
	}
	ab := ArrayBuilder{start: len(dst)}
	dst = append(dst, CodeArray32, 0, 0, 0, 0, 0, 0, 0, 0)
	if a.Descriptor != nil {
		var err error
		if dst, err = appendValue(append(dst, CodeDescribed), a.Descriptor, depth+1); err != nil {
			return dst, err
		}
	}
	dst = append(dst, code)
	for _, enc := range encs {
		payload, err := widen(enc, code)
		if err != nil {
			return dst, err
		}
		dst = append(dst, payload...)
	}
	return ab.End(dst, len(a.Elems)), nil
}

// wideCode maps compact format codes to the fixed form usable for every
// element of an array.
func wideCode(c byte) byte {
	switch c {
	case CodeUint0, CodeSmallUint:
		return CodeUint
	case CodeUlong0, CodeSmallUlong:
		return CodeUlong
	case CodeSmallInt:
		return CodeInt
	case CodeSmallLong:
		return CodeLong
	case CodeTrue, CodeFalse:
		return CodeBool
	case CodeVbin8:
		return CodeVbin32
	case CodeStr8:
		return CodeStr32
	case CodeSym8:
		return CodeSym32
	case CodeList0, CodeList8:
		return CodeList32
	case CodeMap8:
		return CodeMap32
	case CodeArray8:
		return CodeArray32
	}
	return c
}

// widen returns the payload of one encoded value (constructor included in
// enc) re-encoded for the array element constructor code.
func widen(enc []byte, code byte) ([]byte, error) {
	r := NewReader(enc)
	c := r.u8()
	if c == code {
		return r.b, nil
	}
	if wideCode(c) != code {
		return nil, fmt.Errorf("amqp: array element format 0x%02x does not match 0x%02x", c, code)
	}
	switch code {
	case CodeUint:
		return binary.BigEndian.AppendUint32(nil, uint32(r.unsignedOf(c, "uint"))), nil
	case CodeUlong:
		return binary.BigEndian.AppendUint64(nil, r.unsignedOf(c, "ulong")), nil
	case CodeInt:
		return binary.BigEndian.AppendUint32(nil, uint32(r.signedOf(c, "int"))), nil
	case CodeLong:
		return binary.BigEndian.AppendUint64(nil, uint64(r.signedOf(c, "long"))), nil
	case CodeBool:
		if c == CodeTrue {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	case CodeVbin32, CodeStr32, CodeSym32:
		b := r.take(int(r.u8()))
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...), nil
	case CodeList32:
		if c == CodeList0 {
			return []byte{0, 0, 0, 4, 0, 0, 0, 0}, nil
		}
		fallthrough
	case CodeMap32, CodeArray32:
		size, count := int(r.u8()), int(r.u8())
		body := r.take(size - 1)
		out := binary.BigEndian.AppendUint32(nil, uint32(size-1+4))
		out = binary.BigEndian.AppendUint32(out, uint32(count))
		return append(out, body...), nil
	}
	return nil, fmt.Errorf("amqp: cannot widen 0x%02x to 0x%02x", c, code)
}
