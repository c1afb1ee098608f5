package store

import (
	"encoding/binary"
	"fmt"
)

// reader decodes the binary form of a Message with a sticky error: the
// first short or malformed read sets err and every later read returns a
// zero value, so the decoder checks once, in Done.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: message: bad %s", ErrCorrupt, what)
	}
	r.buf = nil
}

func (r *reader) Byte() byte {
	if len(r.buf) < 1 {
		r.fail("length")
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) Varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) Uint32() uint32 {
	v := r.Uvarint()
	if v > 1<<32-1 {
		r.fail("uint32")
		return 0
	}
	return uint32(v)
}

// Count reads an element count and checks it against the bytes left, each
// element taking at least size bytes, so a corrupt count cannot make the
// decoder allocate more than the input's size.
func (r *reader) Count(size int) int {
	v := r.Uvarint()
	if v > uint64(len(r.buf)/size) {
		r.fail("count")
		return 0
	}
	return int(v)
}

// Bytes returns the next length-prefixed field, aliasing r.buf, capped.
func (r *reader) Bytes() []byte {
	v := r.Uvarint()
	if v > uint64(len(r.buf)) {
		r.fail("length")
		return nil
	}
	b := r.buf[:v:v]
	r.buf = r.buf[v:]
	if len(b) == 0 {
		return nil
	}
	return b
}

func (r *reader) String() string { return string(r.Bytes()) }

// Done returns the first error, or one for trailing bytes.
func (r *reader) Done() error {
	if r.err == nil && len(r.buf) > 0 {
		r.err = fmt.Errorf("%w: message: %d trailing bytes", ErrCorrupt, len(r.buf))
	}
	return r.err
}
