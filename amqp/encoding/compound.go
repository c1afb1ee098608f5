package encoding

import "encoding/binary"

// compoundHeader is the size of a list32/map32/array32 header: constructor,
// four-byte size and four-byte count. Builders reserve it and shrink to the
// one-byte form at End when the body is small, which costs a short copy
// but spares a second encoding pass.
const compoundHeader = 9

// ListBuilder writes a list whose size is known only at the end. For
// composite types (performatives, sections) it also drops trailing null
// fields, which the spec allows for composites (part 1, section 1.4: an
// omitted trailing field is null).
//
//	dst, l := encoding.StartList(dst)
//	dst = encoding.AppendString(dst, id)
//	l.Mark(dst)          // a present field
//	dst = l.Null(dst)    // an absent field
//	dst = l.End(dst)     // trailing nulls dropped, smallest header chosen
type ListBuilder struct {
	start   int // offset of the constructor
	n       int // fields written
	keepLen int // length of dst after the last marked field
	keepN   int // fields up to and including the last marked one
}

// StartList reserves a list header at the end of dst.
func StartList(dst []byte) ([]byte, ListBuilder) {
	l := ListBuilder{start: len(dst)}
	dst = append(dst, CodeList32, 0, 0, 0, 0, 0, 0, 0, 0)
	l.keepLen = len(dst)
	return dst, l
}

// Null appends a null field. It is dropped if no marked field follows.
func (l *ListBuilder) Null(dst []byte) []byte {
	l.n++
	return append(dst, CodeNull)
}

// Mark records that a field has just been appended to dst and must be kept.
func (l *ListBuilder) Mark(dst []byte) {
	l.n++
	l.keepLen = len(dst)
	l.keepN = l.n
}

// End drops trailing nulls and writes the list header, choosing list0,
// list8 or list32.
func (l *ListBuilder) End(dst []byte) []byte {
	dst = dst[:l.keepLen]
	return endCompound(dst, l.start, l.keepN, CodeList0, CodeList8)
}

// endCompound rewrites the reserved 32-bit header at start into the
// smallest form. code0 is the empty form (list0), or 0 if there is none.
func endCompound(dst []byte, start, count int, code0, code8 byte) []byte {
	body := len(dst) - start - compoundHeader
	if count == 0 && code0 != 0 {
		return append(dst[:start], code0)
	}
	if body+1 <= 255 && count <= 255 {
		dst[start] = code8
		dst[start+1] = byte(body + 1)
		dst[start+2] = byte(count)
		copy(dst[start+3:], dst[start+compoundHeader:])
		return dst[:len(dst)-6]
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(body+4))
	binary.BigEndian.PutUint32(dst[start+5:], uint32(count))
	return dst
}

// MapBuilder writes a map whose size is known only at the end.
type MapBuilder struct {
	start int
}

// StartMap reserves a map header at the end of dst.
func StartMap(dst []byte) ([]byte, MapBuilder) {
	m := MapBuilder{start: len(dst)}
	return append(dst, CodeMap32, 0, 0, 0, 0, 0, 0, 0, 0), m
}

// End writes the header of a map of pairs key/value pairs, choosing map8
// or map32.
func (m MapBuilder) End(dst []byte, pairs int) []byte {
	return endCompound(dst, m.start, 2*pairs, 0, CodeMap8)
}

// ArrayBuilder writes an array whose size is known only at the end. The
// caller appends the elements without their constructor.
type ArrayBuilder struct {
	start int
}

// StartArray reserves an array header followed by the element constructor
// code.
func StartArray(dst []byte, code byte) ([]byte, ArrayBuilder) {
	a := ArrayBuilder{start: len(dst)}
	return append(dst, CodeArray32, 0, 0, 0, 0, 0, 0, 0, 0, code), a
}

// StartDescribedArray reserves an array header whose elements are all
// described by the numeric descriptor desc with element constructor code.
func StartDescribedArray(dst []byte, desc uint64, code byte) ([]byte, ArrayBuilder) {
	a := ArrayBuilder{start: len(dst)}
	dst = append(dst, CodeArray32, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = AppendDescriptor(dst, desc)
	return append(dst, code), a
}

// End writes the header of an array of count elements.
func (a ArrayBuilder) End(dst []byte, count int) []byte {
	return endCompound(dst, a.start, count, 0, CodeArray8)
}
