package engine

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/ferry-iot/ferry/internal/analytics/fields"
	"github.com/ferry-iot/ferry/internal/analytics/sketch"
)

// codecVersion starts every snapshot; a snapshot of another version is
// refused, not misread.
const codecVersion = 1

// Snapshot encodes the operator's state (keys, watermarks, open windows)
// for a checkpoint.
func (o *Operator) Snapshot() []byte {
	b := []byte{codecVersion}
	b = binary.AppendUvarint(b, uint64(len(o.keys)))
	for _, ks := range o.keys {
		b = appendStr(b, ks.key)
		if ks.x == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = binary.AppendVarint(b, ks.x.hopDone)
			b = binary.AppendUvarint(b, uint64(len(ks.x.keyVals)))
			for _, v := range ks.x.keyVals {
				b = append(b, byte(v.Kind))
				b = binary.BigEndian.AppendUint64(b, math.Float64bits(v.Num))
				b = appendStr(b, v.Str)
			}
		}
		for _, v := range []int64{ks.maxEvent, ks.maxArrival, ks.wm} {
			b = binary.AppendVarint(b, v)
		}
		b = binary.AppendUvarint(b, uint64(ks.pendDropped))
		b = binary.AppendUvarint(b, uint64(ks.pendParse))
		b = binary.AppendUvarint(b, uint64(len(ks.windows)))
		for _, w := range ks.windows {
			b = appendWindow(b, w)
		}
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendWindow(b []byte, w *window) []byte {
	for _, v := range []int64{w.start, w.end, w.lastEmit} {
		b = binary.AppendVarint(b, v)
	}
	for _, v := range []uint32{w.rows, w.late, w.dropped, w.parseErrors, w.revision} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	var flags byte
	if w.emitted {
		flags |= 1
	}
	if w.dirty {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(w.vals)))
	for _, v := range w.vals {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
	}
	if w.sk == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(w.sk.s)))
	for i := range w.sk.s {
		b = w.sk.s[i].AppendBinary(b)
	}
	return b
}

// ErrSnapshot is a snapshot that does not fit the plan or does not decode.
var ErrSnapshot = errors.New("analytics snapshot does not decode for this query")

// decoder reads a snapshot with a sticky error.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) count(limit int) int {
	n := d.uvarint()
	if n > uint64(limit) {
		d.bad = true
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) float() float64 {
	if len(d.b) < 8 {
		d.bad = true
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) u32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.bad = true
	}
	return uint32(v)
}

// Restore replaces the operator's state with a snapshot of the same
// plan. The limits count the restored keys and windows, even past them.
func (o *Operator) Restore(snap []byte) error {
	d := &decoder{b: snap}
	if d.byte1() != codecVersion {
		return ErrSnapshot
	}
	p := o.plan
	keys := map[string]*keyState{}
	windows := 0
	nkeys := d.count(len(snap))
	for range nkeys {
		if d.bad {
			break
		}
		ks := &keyState{key: d.str()}
		if d.byte1() == 1 {
			x := ks.extra()
			x.hopDone = d.varint()
			n := d.count(len(p.keys))
			for range n {
				v := fields.Value{Kind: fields.Kind(d.byte1()), Num: d.float(), Str: d.str()}
				x.keyVals = append(x.keyVals, v)
			}
		}
		ks.maxEvent, ks.maxArrival, ks.wm = d.varint(), d.varint(), d.varint()
		ks.pendDropped, ks.pendParse = d.u32(), d.u32()
		nw := d.count(len(d.b))
		for range nw {
			w := &window{start: d.varint(), end: d.varint(), lastEmit: d.varint()}
			w.rows, w.late, w.dropped, w.parseErrors, w.revision = d.u32(), d.u32(), d.u32(), d.u32(), d.u32()
			flags := d.byte1()
			w.emitted, w.dirty = flags&1 != 0, flags&2 != 0
			if d.count(p.nvals) != p.nvals {
				d.bad = true
			}
			w.vals = make([]float64, p.nvals)
			for i := range w.vals {
				w.vals[i] = d.float()
			}
			nsk := d.count(p.nsketch)
			if nsk != p.nsketch {
				d.bad = true
			}
			if nsk > 0 && !d.bad {
				w.sk = &sketches{s: make([]sketch.Sketch, nsk)}
				for i := range nsk {
					s, rest, err := sketch.Decode(d.b)
					if err != nil {
						d.bad = true
						break
					}
					w.sk.s[i], d.b = *s, rest
				}
			}
			if d.bad {
				break
			}
			ks.windows = append(ks.windows, w)
		}
		windows += len(ks.windows)
		keys[ks.key] = ks
	}
	if d.bad || len(d.b) != 0 {
		return ErrSnapshot
	}
	o.limits.keys.Add(int64(len(keys) - len(o.keys)))
	old := 0
	for _, ks := range o.keys {
		old += len(ks.windows)
	}
	o.limits.windows.Add(int64(windows - old))
	o.keys = keys
	return nil
}

// Release gives back the operator's keys and windows to the limits and
// empties it (its partition moved to another node, or a rollback).
func (o *Operator) Release() {
	windows := 0
	for _, ks := range o.keys {
		windows += len(ks.windows)
	}
	o.limits.keys.Add(-int64(len(o.keys)))
	o.limits.windows.Add(-int64(windows))
	o.keys = map[string]*keyState{}
}
