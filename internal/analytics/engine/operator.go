package engine

import (
	"cmp"
	"math"
	"slices"
	"sync/atomic"

	"github.com/ferry-iot/ferry/internal/analytics/fields"
	"github.com/ferry-iot/ferry/internal/analytics/query"
	"github.com/ferry-iot/ferry/internal/analytics/sketch"
)

// Input is one message for a query.
type Input struct {
	Tenant, Device, Topic string
	Payload               []byte
	// Arrival is when Ferry took the message (Hono's creation-time), Unix
	// milliseconds: the event time without TIME BY.
	Arrival int64
	// Props reads prop.<name>; nil: none.
	Props Properties
	// Ext is the device's registry ext (device.ext.<k>); nil: none.
	Ext map[string]any
}

// Properties reads a message's application or user properties.
type Properties interface {
	Property(key string) (any, bool)
}

// Drop reasons, as /metrics and explain name them.
const (
	ReasonLate       = "late"
	ReasonFuture     = "future"
	ReasonMaxKeys    = "max_keys"
	ReasonMaxWindows = "max_windows"
	ReasonNoTime     = "no_time"
)

// Stats are an operator's counters since it started.
type Stats struct {
	In          atomic.Int64 // messages offered
	Filtered    atomic.Int64 // refused by WHERE
	Late        atomic.Int64 // accepted out of order (within lateness)
	ParseErrors atomic.Int64
	Rows        atomic.Int64 // rows emitted (after HAVING)
	Dropped     [5]atomic.Int64
	// Delay is the wall time from window end + lateness to the first
	// final row of windows a newer row closed (time windows), in ms: how
	// long results wait under load (exact with arrival time; with TIME BY
	// it also holds the devices' clock offsets). IdleDelay is the same
	// for windows the idle close emitted, which waits 1 s more by design.
	Delay, IdleDelay Delay
}

// Delay sums, counts and bounds emit delays, in ms.
type Delay struct{ Sum, Count, Max atomic.Int64 }

func (d *Delay) add(ms int64) {
	ms = max(ms, 0)
	d.Sum.Add(ms)
	d.Count.Add(1)
	for {
		m := d.Max.Load()
		if ms <= m || d.Max.CompareAndSwap(m, ms) {
			return
		}
	}
}

// Avg is the mean delay in ms (0 without any).
func (d *Delay) Avg() float64 {
	if n := d.Count.Load(); n > 0 {
		return float64(d.Sum.Load()) / float64(n)
	}
	return 0
}

// DropReasons lists the reasons of Stats.Dropped, in order.
var DropReasons = [...]string{ReasonLate, ReasonFuture, ReasonMaxKeys, ReasonMaxWindows, ReasonNoTime}

func reasonIndex(r string) int {
	for i, s := range DropReasons {
		if s == r {
			return i
		}
	}
	return 0
}

// Limits bound the state of one query, shared by its operators.
type Limits struct {
	MaxKeys, MaxWindows int64
	keys, windows       atomic.Int64
	// OnLimit, if set, is told when a limit refuses a row (reason
	// max_keys or max_windows); it must be cheap (the caller rate-limits
	// logs).
	OnLimit func(reason string)
}

// Keys and Windows are the state now held against the limits.
func (l *Limits) Keys() int64    { return l.keys.Load() }
func (l *Limits) Windows() int64 { return l.windows.Load() }

// Row is one result: a window of a key, with its aggregates.
type Row struct {
	Plan       *Plan
	Key        string
	KeyVals    []fields.Value
	Start, End int64 // Unix ms: [Start, End)
	Revision   uint32
	Final      bool
	// Aggs are the values of Plan's aggregates (columns and HAVING's).
	Aggs                       []fields.Value
	Late, Dropped, ParseErrors uint32
}

// window is the state of one (key, window), or of one HOP pane. Field
// order and widths keep it in the 80-byte size class.
type window struct {
	start, end int64
	lastEmit   int64 // wall ms of its last early row
	vals       []float64
	// sk holds the percentile sketches; nil without percentiles (a
	// pointer, not a slice, to keep windows small).
	sk   *sketches
	rows uint32
	// late, dropped, parseErrors count the window's out-of-order rows
	// and the key's rows lost while it was the key's newest window.
	late, dropped, parseErrors uint32
	revision                   uint32
	emitted                    bool // closed and kept for LATE UPDATE
	dirty                      bool // changed since its last row
}

type sketches struct{ s []sketch.Sketch }

// keyState is what a key holds between messages (80 bytes).
type keyState struct {
	key string
	// x holds what only some queries need; nil for most.
	x *keyExtra
	// maxEvent is the highest event time accepted; maxArrival the wall
	// time of the row that set it, to advance the key's clock while it
	// is quiet (and to forget keys idle for long).
	maxEvent, maxArrival int64
	// wm closes windows: one whose end <= wm is emitted.
	wm int64
	// windows are open windows (HOP: panes) by start, and, with LATE
	// UPDATE, emitted ones kept for revisions.
	windows []*window
	// pendDropped and pendParse wait for a window to report them.
	pendDropped, pendParse uint32
}

type keyExtra struct {
	// keyVals are the key's values, unless the key is a single string
	// (key itself).
	keyVals []fields.Value
	// hopDone is the end of the last HOP window emitted.
	hopDone int64
}

func (ks *keyState) extra() *keyExtra {
	if ks.x == nil {
		ks.x = &keyExtra{hopDone: noTime}
	}
	return ks.x
}

func (ks *keyState) hopDone() int64 {
	if ks.x == nil {
		return noTime
	}
	return ks.x.hopDone
}

// Operator is one query's state over a set of keys.
type Operator struct {
	plan    *Plan
	keys    map[string]*keyState
	emit    func(*Row)
	limits  *Limits
	Stats   *Stats
	scratch []fields.Value
	keyBuf  []byte
	row     Row
	aggBuf  []fields.Value
	keyOne  [1]fields.Value
	idle    bool // Tick is closing quiet keys' windows
}

// NewOperator returns an empty operator emitting through emit (called on
// the operator's goroutine; the Row is reused after emit returns).
// stats and limits may be shared by the operators of one query.
func NewOperator(p *Plan, limits *Limits, stats *Stats, emit func(*Row)) *Operator {
	return &Operator{plan: p, keys: map[string]*keyState{}, emit: emit, limits: limits, Stats: stats,
		scratch: make([]fields.Value, len(p.slots)), aggBuf: make([]fields.Value, len(p.aggs))}
}

const noTime = math.MinInt64

// Process takes one message at wall time now (Unix ms).
func (o *Operator) Process(in *Input, now int64) {
	p := o.plan
	o.Stats.In.Add(1)
	vals := o.scratch
	parseErr := false
	if p.extract != nil {
		parseErr = p.extract.Extract(in.Payload, vals) != nil
	}
	for i := p.extractSlots(); i < len(p.slots); i++ {
		vals[i] = p.slots[i].read(in)
	}
	if parseErr {
		o.Stats.ParseErrors.Add(1)
		if ks := o.knownKey(vals); ks != nil {
			o.charge(ks, false)
		}
		return
	}
	if p.where != nil {
		if v := p.where(vals); v.Kind != fields.Bool || v.Num == 0 {
			o.Stats.Filtered.Add(1)
			return
		}
	}
	t := in.Arrival
	if p.timeSlot >= 0 {
		var ok bool
		if t, ok = toMillis(vals[p.timeSlot]); !ok {
			o.Stats.ParseErrors.Add(1)
			if ks := o.knownKey(vals); ks != nil {
				o.charge(ks, false)
			}
			return
		}
	}
	future := t > now+p.skew
	if future && !p.clampFuture {
		o.drop(o.knownKey(vals), ReasonFuture)
		return
	}
	if future {
		t = now
	}
	ks := o.keyFor(vals)
	if ks == nil {
		o.drop(nil, ReasonMaxKeys)
		return
	}
	outOfOrder := t < ks.maxEvent
	var ok bool
	switch p.Query.Window.Kind {
	case query.Tumble:
		ok = o.tumble(ks, t, vals, outOfOrder, now)
	case query.Hop:
		ok = o.hop(ks, t, vals, outOfOrder)
	case query.Session:
		ok = o.session(ks, t, vals, outOfOrder, now)
	case query.CountWindow:
		o.count(ks, t, vals, now) // no watermark: windows close by rows
		return
	}
	if !ok {
		return
	}
	if outOfOrder {
		o.Stats.Late.Add(1)
	}
	if t > ks.maxEvent {
		ks.maxEvent, ks.maxArrival = t, now
		if wm := t - p.lateness; wm > ks.wm {
			ks.wm = wm
			o.close(ks, now)
		}
	}
}

// extractSlots is the number of payload slots (they come first).
func (p *Plan) extractSlots() int {
	if p.extract == nil {
		return 0
	}
	return p.extract.Slots()
}

// read returns a non-payload field of in.
func (s slot) read(in *Input) fields.Value {
	f := s.field
	switch f.Kind {
	case query.FieldDevice:
		return fields.StringValue(in.Device)
	case query.FieldTenant:
		return fields.StringValue(in.Tenant)
	case query.FieldTopic:
		t := in.Topic
		for range f.Level {
			i := indexByte(t, '/')
			if i < 0 {
				return fields.Value{}
			}
			t = t[i+1:]
		}
		if i := indexByte(t, '/'); i >= 0 {
			t = t[:i]
		}
		return fields.StringValue(t)
	case query.FieldProp:
		if in.Props == nil {
			return fields.Value{}
		}
		v, _ := in.Props.Property(f.Name)
		return anyValue(v)
	case query.FieldDeviceExt:
		return anyValue(in.Ext[f.Name])
	}
	return fields.Value{}
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func anyValue(v any) fields.Value {
	switch x := v.(type) {
	case string:
		return fields.StringValue(x)
	case float64:
		return fields.NumberValue(x)
	case int64:
		return fields.NumberValue(float64(x))
	case int:
		return fields.NumberValue(float64(x))
	case int32:
		return fields.NumberValue(float64(x))
	case bool:
		return fields.BoolValue(x)
	}
	return fields.Value{}
}

// keyString builds the key of vals into o.keyBuf; a single string key is
// returned as is, without copying.
func (o *Operator) keyString(vals []fields.Value) (string, bool) {
	p := o.plan
	if len(p.keys) == 1 && vals[p.keys[0]].Kind == fields.String {
		return vals[p.keys[0]].Str, true
	}
	b := o.keyBuf[:0]
	for i, k := range p.keys {
		if i > 0 {
			b = append(b, 0x1f)
		}
		b = appendValueText(b, vals[k])
	}
	o.keyBuf = b
	return "", false
}

// knownKey returns the state of vals' key if it exists already.
func (o *Operator) knownKey(vals []fields.Value) *keyState {
	if s, ok := o.keyString(vals); ok {
		return o.keys[s]
	}
	return o.keys[string(o.keyBuf)]
}

// keyFor returns the state of vals' key, creating it within the limit.
func (o *Operator) keyFor(vals []fields.Value) *keyState {
	s, single := o.keyString(vals)
	var ks *keyState
	if single {
		ks = o.keys[s]
	} else {
		ks = o.keys[string(o.keyBuf)]
		s = string(o.keyBuf)
	}
	if ks != nil {
		return ks
	}
	if o.limits.keys.Add(1) > o.limits.MaxKeys {
		o.limits.keys.Add(-1)
		if o.limits.OnLimit != nil {
			o.limits.OnLimit(ReasonMaxKeys)
		}
		return nil
	}
	ks = &keyState{key: s, maxEvent: noTime, wm: noTime}
	if !single {
		x := ks.extra()
		x.keyVals = make([]fields.Value, len(o.plan.keys))
		for i, k := range o.plan.keys {
			x.keyVals[i] = vals[k]
		}
	}
	o.keys[s] = ks
	return ks
}

// drop counts a lost row, in the key's newest window when there is one.
func (o *Operator) drop(ks *keyState, reason string) {
	o.Stats.Dropped[reasonIndex(reason)].Add(1)
	if ks != nil {
		o.charge(ks, true)
	}
}

// charge records a dropped (or, !dropped, unparsable) row of ks.
func (o *Operator) charge(ks *keyState, dropped bool) {
	var w *window
	for i := len(ks.windows) - 1; i >= 0; i-- {
		if !ks.windows[i].emitted {
			w = ks.windows[i]
			break
		}
	}
	switch {
	case w != nil && dropped:
		w.dropped++
		w.dirty = true
	case w != nil:
		w.parseErrors++
		w.dirty = true
	case dropped:
		ks.pendDropped++
	default:
		ks.pendParse++
	}
}

// newWindow makes a window within the limit.
func (o *Operator) newWindow(ks *keyState, start, end int64) *window {
	if o.limits.windows.Add(1) > o.limits.MaxWindows {
		o.limits.windows.Add(-1)
		if o.limits.OnLimit != nil {
			o.limits.OnLimit(ReasonMaxWindows)
		}
		return nil
	}
	w := &window{start: start, end: end, vals: make([]float64, o.plan.nvals)}
	if o.plan.nsketch > 0 {
		w.sk = &sketches{s: make([]sketch.Sketch, o.plan.nsketch)}
	}
	w.dropped, w.parseErrors = ks.pendDropped, ks.pendParse
	ks.pendDropped, ks.pendParse = 0, 0
	i, _ := slices.BinarySearchFunc(ks.windows, start, func(w *window, s int64) int { return cmp.Compare(w.start, s) })
	ks.windows = slices.Insert(ks.windows, i, w)
	return w
}

func floorDiv(t, d int64) int64 {
	q := t / d
	if t%d != 0 && t < 0 {
		q--
	}
	return q * d
}

// update adds one row to w.
func (o *Operator) update(w *window, t int64, vals []fields.Value, outOfOrder bool) {
	p := o.plan
	w.rows++
	w.dirty = true
	if outOfOrder {
		w.late++
	}
	v := w.vals
	for _, c := range p.args {
		if vals[c.slot].Kind == fields.Number {
			v[c.count]++
		}
	}
	for i := range p.aggs {
		a := &p.aggs[i]
		if a.arg < 0 {
			continue
		}
		x := vals[a.arg]
		if x.Kind != fields.Number {
			continue
		}
		n := v[a.count]
		switch a.fn {
		case "sum", "avg":
			v[a.val] += x.Num
		case "min":
			if n == 1 || x.Num < v[a.val] {
				v[a.val] = x.Num
			}
		case "max":
			if n == 1 || x.Num > v[a.val] {
				v[a.val] = x.Num
			}
		case "first":
			if n == 1 || float64(t) < v[a.val+1] {
				v[a.val], v[a.val+1] = x.Num, float64(t)
			}
		case "last":
			if n == 1 || float64(t) >= v[a.val+1] {
				v[a.val], v[a.val+1] = x.Num, float64(t)
			}
		case "stddev": // Welford
			d := x.Num - v[a.val]
			v[a.val] += d / n
			v[a.val+1] += d * (x.Num - v[a.val])
		case "count":
		default:
			if a.sk >= 0 && p.firstOfSketch(i) {
				w.sk.s[a.sk].Add(x.Num)
			}
		}
	}
}

// firstOfSketch reports whether aggs[i] is the first aggregate of its
// sketch, which alone feeds it.
func (p *Plan) firstOfSketch(i int) bool {
	for j := range i {
		if p.aggs[j].sk == p.aggs[i].sk {
			return false
		}
	}
	return true
}

// merge adds src's rows to dst (HOP panes, SESSION merges).
func (o *Operator) merge(dst, src *window) {
	p := o.plan
	d, s := dst.vals, src.vals
	for i := range p.aggs {
		a := &p.aggs[i]
		if a.arg < 0 {
			continue
		}
		nd, ns := d[a.count], s[a.count]
		if ns == 0 {
			continue
		}
		switch a.fn {
		case "sum", "avg":
			d[a.val] += s[a.val]
		case "min":
			if nd == 0 || s[a.val] < d[a.val] {
				d[a.val] = s[a.val]
			}
		case "max":
			if nd == 0 || s[a.val] > d[a.val] {
				d[a.val] = s[a.val]
			}
		case "first":
			if nd == 0 || s[a.val+1] < d[a.val+1] {
				d[a.val], d[a.val+1] = s[a.val], s[a.val+1]
			}
		case "last":
			if nd == 0 || s[a.val+1] >= d[a.val+1] {
				d[a.val], d[a.val+1] = s[a.val], s[a.val+1]
			}
		case "stddev": // Chan et al.
			n := nd + ns
			delta := s[a.val] - d[a.val]
			d[a.val] += delta * ns / n
			d[a.val+1] += s[a.val+1] + delta*delta*nd*ns/n
		case "count":
		default:
			if p.firstOfSketch(i) {
				dst.sk.s[a.sk].Merge(&src.sk.s[a.sk])
			}
		}
	}
	for _, c := range p.args {
		d[c.count] += s[c.count]
	}
	dst.rows += src.rows
	dst.late += src.late
	dst.dropped += src.dropped
	dst.parseErrors += src.parseErrors
}

// keyValues returns the values of ks's key.
func (o *Operator) keyValues(ks *keyState) []fields.Value {
	if ks.x != nil && ks.x.keyVals != nil {
		return ks.x.keyVals
	}
	if len(o.plan.keys) == 0 {
		return nil
	}
	o.keyOne[0] = fields.StringValue(ks.key)
	return o.keyOne[:]
}

// emitWindow builds w's row and hands it to emit unless HAVING refuses it.
func (o *Operator) emitWindow(ks *keyState, w *window, final bool, now int64) {
	p := o.plan
	w.dirty = false
	w.lastEmit = now
	aggs := o.aggBuf
	for i := range p.aggs {
		aggs[i] = p.aggValue(i, w)
	}
	r := &o.row
	keyVals := o.keyValues(ks)
	*r = Row{Plan: p, Key: ks.key, KeyVals: keyVals, Start: w.start, End: w.end, Revision: w.revision, Final: final,
		Aggs: aggs, Late: w.late, Dropped: w.dropped, ParseErrors: w.parseErrors}
	if final && w.revision == 0 && p.Query.Window.Kind != query.CountWindow {
		d := &o.Stats.Delay
		if o.idle {
			d = &o.Stats.IdleDelay
		}
		d.add(now - (w.end + p.lateness))
	}
	w.revision++
	if p.having != nil {
		env := make([]fields.Value, 0, len(keyVals)+len(aggs))
		env = append(append(env, keyVals...), aggs...)
		if v := p.having(env); v.Kind != fields.Bool || v.Num == 0 {
			return
		}
	}
	o.Stats.Rows.Add(1)
	o.emit(r)
}

// aggValue is aggregate i's value over w; Null when it saw no value.
func (p *Plan) aggValue(i int, w *window) fields.Value {
	a := &p.aggs[i]
	if a.arg < 0 {
		return fields.NumberValue(float64(w.rows))
	}
	v := w.vals
	n := v[a.count]
	if a.fn == "count" {
		return fields.NumberValue(n)
	}
	if n == 0 {
		return fields.Value{}
	}
	switch a.fn {
	case "sum", "min", "max", "first", "last":
		return fields.NumberValue(v[a.val])
	case "avg":
		return fields.NumberValue(v[a.val] / n)
	case "stddev":
		if n < 2 {
			return fields.Value{}
		}
		return fields.NumberValue(math.Sqrt(v[a.val+1] / (n - 1)))
	}
	return fields.NumberValue(w.sk.s[a.sk].Quantile(a.q))
}

// Tick advances the wall clock to now (Unix ms): quiet keys' windows
// close once their clock (max event time plus the wall time since) has
// passed end + lateness + 1 s; open windows emit early rows (EMIT EVERY);
// keys idle for an hour with nothing open are forgotten.
func (o *Operator) Tick(now int64) {
	p := o.plan
	idleTTL := max(3_600_000, 2*(p.size+p.lateness))
	for k, ks := range o.keys {
		if ks.maxEvent != noTime && p.Query.Window.Kind != query.CountWindow {
			clock := ks.maxEvent + (now - ks.maxArrival)
			if wm := clock - p.lateness - 1000; wm > ks.wm {
				ks.wm = wm
				o.idle = true
				o.close(ks, now)
				o.idle = false
			}
		}
		if p.every > 0 {
			o.early(ks, now)
		}
		if len(ks.windows) == 0 && now-ks.maxArrival > idleTTL {
			delete(o.keys, k)
			o.limits.keys.Add(-1)
		}
	}
}

// early emits a row for each changed open window whose last row is
// older than EMIT EVERY's period.
func (o *Operator) early(ks *keyState, now int64) {
	p := o.plan
	if p.Query.Window.Kind == query.Hop {
		return // HOP windows are merged from panes at close only
	}
	for _, w := range ks.windows {
		if w.dirty && !w.emitted && now-w.lastEmit >= p.every {
			o.emitWindow(ks, w, false, now)
		}
	}
}

// Explain is a snapshot of an operator's state.
type Explain struct {
	Keys        int
	OpenWindows int
	StateBytes  int64
}

// Explain measures the operator's state.
func (o *Operator) Explain() Explain {
	var e Explain
	for _, ks := range o.keys {
		e.Keys++
		e.StateBytes += keyStateBytes + int64(len(ks.key)) + int64(8*cap(ks.windows))
		if ks.x != nil {
			e.StateBytes += 48 + int64(32*len(ks.x.keyVals))
		}
		for _, w := range ks.windows {
			e.OpenWindows++
			e.StateBytes += windowBytes(w)
		}
	}
	return e
}

// Approximate sizes: a keyState and its map entry; a window struct and
// its slice headers.
const (
	keyStateBytes = 112 // 80-byte size class and the map's slot
	windowStruct  = 80
)

func windowBytes(w *window) int64 {
	n := int64(windowStruct + 8*cap(w.vals))
	if w.sk != nil {
		n += 24
		for i := range w.sk.s {
			n += int64(w.sk.s[i].Bytes())
		}
	}
	return n
}
