package encoding

import (
	"encoding/binary"
	"math"
	"time"
)

// AppendNull appends null.
func AppendNull(dst []byte) []byte { return append(dst, CodeNull) }

// AppendBool appends v as true or false (one byte each).
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, CodeTrue)
	}
	return append(dst, CodeFalse)
}

// AppendUbyte appends v as ubyte.
func AppendUbyte(dst []byte, v uint8) []byte { return append(dst, CodeUbyte, v) }

// AppendUshort appends v as ushort.
func AppendUshort(dst []byte, v uint16) []byte {
	return binary.BigEndian.AppendUint16(append(dst, CodeUshort), v)
}

// AppendUint appends v as uint0, smalluint or uint, whichever is smallest.
func AppendUint(dst []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(dst, CodeUint0)
	case v < 256:
		return append(dst, CodeSmallUint, byte(v))
	}
	return binary.BigEndian.AppendUint32(append(dst, CodeUint), v)
}

// AppendUlong appends v as ulong0, smallulong or ulong, whichever is smallest.
func AppendUlong(dst []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(dst, CodeUlong0)
	case v < 256:
		return append(dst, CodeSmallUlong, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, CodeUlong), v)
}

// AppendByte appends v as byte.
func AppendByte(dst []byte, v int8) []byte { return append(dst, CodeByte, byte(v)) }

// AppendShort appends v as short.
func AppendShort(dst []byte, v int16) []byte {
	return binary.BigEndian.AppendUint16(append(dst, CodeShort), uint16(v))
}

// AppendInt appends v as smallint or int.
func AppendInt(dst []byte, v int32) []byte {
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		return append(dst, CodeSmallInt, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint32(append(dst, CodeInt), uint32(v))
}

// AppendLong appends v as smalllong or long.
func AppendLong(dst []byte, v int64) []byte {
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		return append(dst, CodeSmallLong, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint64(append(dst, CodeLong), uint64(v))
}

// AppendFloat appends v as float (IEEE 754 binary32).
func AppendFloat(dst []byte, v float32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, CodeFloat), math.Float32bits(v))
}

// AppendDouble appends v as double (IEEE 754 binary64).
func AppendDouble(dst []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, CodeDouble), math.Float64bits(v))
}

// AppendDecimal32 appends v as decimal32.
func AppendDecimal32(dst []byte, v Decimal32) []byte {
	return append(append(dst, CodeDecimal32), v[:]...)
}

// AppendDecimal64 appends v as decimal64.
func AppendDecimal64(dst []byte, v Decimal64) []byte {
	return append(append(dst, CodeDecimal64), v[:]...)
}

// AppendDecimal128 appends v as decimal128.
func AppendDecimal128(dst []byte, v Decimal128) []byte {
	return append(append(dst, CodeDecimal128), v[:]...)
}

// AppendChar appends v as char (UTF-32BE).
func AppendChar(dst []byte, v Char) []byte {
	return binary.BigEndian.AppendUint32(append(dst, CodeChar), uint32(v))
}

// AppendTimestamp appends t as timestamp: milliseconds since the Unix
// epoch; finer precision is dropped.
func AppendTimestamp(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(append(dst, CodeTimestamp), uint64(toMillis(t)))
}

// AppendUUID appends v as uuid.
func AppendUUID(dst []byte, v UUID) []byte { return append(append(dst, CodeUUID), v[:]...) }

// AppendBinary appends v as vbin8 or vbin32. A nil slice is binary of
// length zero, not null.
func AppendBinary(dst []byte, v []byte) []byte {
	dst = appendVar(dst, CodeVbin8, CodeVbin32, len(v))
	return append(dst, v...)
}

// AppendString appends v as str8 or str32. v should be valid UTF-8; the
// encoder does not check.
func AppendString(dst []byte, v string) []byte {
	dst = appendVar(dst, CodeStr8, CodeStr32, len(v))
	return append(dst, v...)
}

// AppendSymbol appends v as sym8 or sym32.
func AppendSymbol(dst []byte, v Symbol) []byte {
	dst = appendVar(dst, CodeSym8, CodeSym32, len(v))
	return append(dst, v...)
}

func appendVar(dst []byte, code8, code32 byte, n int) []byte {
	if n < 256 {
		return append(dst, code8, byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, code32), uint32(n))
}

// AppendDescriptor appends the described-type constructor (0x00) and a
// numeric descriptor. The described value must follow.
func AppendDescriptor(dst []byte, code uint64) []byte {
	return AppendUlong(append(dst, CodeDescribed), code)
}

// AppendSymbolArray appends syms as an array of symbols (sym8 elements when
// all are shorter than 256 bytes). An empty slice is encoded as null, which
// is how the spec's "multiple" fields say "none".
func AppendSymbolArray(dst []byte, syms []Symbol) []byte {
	if len(syms) == 0 {
		return AppendNull(dst)
	}
	code := CodeSym8
	for _, s := range syms {
		if len(s) > 255 {
			code = CodeSym32
		}
	}
	dst, a := StartArray(dst, code)
	for _, s := range syms {
		if code == CodeSym8 {
			dst = append(dst, byte(len(s)))
		} else {
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
		}
		dst = append(dst, s...)
	}
	return a.End(dst, len(syms))
}
