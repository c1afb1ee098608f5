package engine

import (
	"cmp"
	"math"
	"slices"

	"github.com/ferry-iot/ferry/internal/analytics/fields"
	"github.com/ferry-iot/ferry/internal/analytics/query"
	"github.com/ferry-iot/ferry/internal/analytics/sketch"
)

// Window assignment and closing, one function per window kind.

func (o *Operator) tumble(ks *keyState, t int64, vals []fields.Value, outOfOrder bool, now int64) bool {
	size := o.plan.size
	start := floorDiv(t, size)
	end := start + size
	var w *window
	for i := len(ks.windows) - 1; i >= 0; i-- {
		if ks.windows[i].start == start {
			w = ks.windows[i]
			break
		}
	}
	if end <= ks.wm && (w == nil || !w.emitted) {
		o.drop(ks, ReasonLate)
		return false
	}
	if w == nil {
		if w = o.newWindow(ks, start, end); w == nil {
			o.drop(ks, ReasonMaxWindows)
			return false
		}
	}
	o.update(w, t, vals, outOfOrder)
	if w.emitted { // LATE UPDATE: a new revision at once
		o.emitWindow(ks, w, true, now)
	}
	return true
}

// hopLastEnd is the end of the last HOP window holding the pane at ps.
func (p *Plan) hopLastEnd(ps int64) int64 { return floorDiv(ps, p.slide) + p.size }

func (o *Operator) hop(ks *keyState, t int64, vals []fields.Value, outOfOrder bool) bool {
	p := o.plan
	ps := floorDiv(t, p.pane)
	if p.hopLastEnd(ps) <= ks.wm {
		o.drop(ks, ReasonLate)
		return false
	}
	var w *window
	for i := len(ks.windows) - 1; i >= 0; i-- {
		if ks.windows[i].start == ps {
			w = ks.windows[i]
			break
		}
	}
	if w == nil {
		if w = o.newWindow(ks, ps, ps+p.pane); w == nil {
			o.drop(ks, ReasonMaxWindows)
			return false
		}
	}
	o.update(w, t, vals, outOfOrder)
	return true
}

func (o *Operator) session(ks *keyState, t int64, vals []fields.Value, outOfOrder bool, now int64) bool {
	gap := o.plan.size
	if t+gap <= ks.wm {
		o.drop(ks, ReasonLate)
		return false
	}
	// The open sessions the row touches: start - gap <= t < end.
	var hit *window
	for i := 0; i < len(ks.windows); i++ {
		w := ks.windows[i]
		if w.emitted || t < w.start-gap || t >= w.end {
			continue
		}
		if hit == nil {
			hit = w
			continue
		}
		// The row bridges two sessions: merge w into hit.
		o.merge(hit, w)
		hit.start, hit.end = min(hit.start, w.start), max(hit.end, w.end)
		ks.windows = slices.Delete(ks.windows, i, i+1)
		o.limits.windows.Add(-1)
		i--
	}
	if hit == nil {
		if hit = o.newWindow(ks, t, t+gap); hit == nil {
			o.drop(ks, ReasonMaxWindows)
			return false
		}
	}
	if t < hit.start {
		hit.start = t
		slices.SortFunc(ks.windows, func(a, b *window) int { return cmp.Compare(a.start, b.start) })
	}
	hit.end = max(hit.end, t+gap)
	o.update(hit, t, vals, outOfOrder)
	return true
}

func (o *Operator) count(ks *keyState, t int64, vals []fields.Value, now int64) {
	var w *window
	if len(ks.windows) > 0 {
		w = ks.windows[0]
	} else if w = o.newWindow(ks, t, t+1); w == nil {
		o.drop(ks, ReasonMaxWindows)
		return
	}
	w.start, w.end = min(w.start, t), max(w.end, t+1)
	o.update(w, t, vals, false)
	if t > ks.maxEvent {
		ks.maxEvent, ks.maxArrival = t, now
	}
	if int64(w.rows) >= o.plan.Query.Window.Rows {
		o.emitWindow(ks, w, true, now)
		o.removeWindow(ks, 0)
	}
}

func (o *Operator) removeWindow(ks *keyState, i int) {
	ks.windows = slices.Delete(ks.windows, i, i+1)
	o.limits.windows.Add(-1)
}

// close emits the windows of ks that its watermark passed.
func (o *Operator) close(ks *keyState, now int64) {
	p := o.plan
	switch p.Query.Window.Kind {
	case query.Hop:
		o.closeHop(ks, now)
		return
	case query.CountWindow:
		return
	}
	retain := max(p.lateness, p.size, 60_000)
	for i := 0; i < len(ks.windows); i++ {
		w := ks.windows[i]
		if w.end > ks.wm {
			continue
		}
		if !w.emitted {
			o.emitWindow(ks, w, true, now)
			if p.Query.Late == query.LateUpdate {
				w.emitted = true
				continue
			}
		} else if w.end+retain > ks.wm {
			continue
		}
		o.removeWindow(ks, i)
		i--
	}
}

// closeHop emits every HOP window ending at or before the watermark
// that holds a pane, then frees the panes no open window needs.
func (o *Operator) closeHop(ks *keyState, now int64) {
	p := o.plan
	if len(ks.windows) == 0 {
		return
	}
	first := func(ps int64) int64 { // first window start holding the pane at ps
		return floorDiv(ps+p.pane-p.size+p.slide-1, p.slide)
	}
	s := first(ks.windows[0].start)
	if done := ks.hopDone(); done != noTime {
		s = max(s, done-p.size+p.slide)
	}
	acc := &window{vals: make([]float64, p.nvals)}
	if p.nsketch > 0 {
		acc.sk = &sketches{s: make([]sketch.Sketch, p.nsketch)}
	}
	for s+p.size <= ks.wm {
		e := s + p.size
		n := 0
		for _, w := range ks.windows {
			if w.start >= s && w.start < e {
				if n == 0 {
					resetWindow(acc)
				}
				o.merge(acc, w)
				n++
			}
		}
		if n > 0 {
			acc.start, acc.end = s, e
			o.emitWindow(ks, acc, true, now)
			ks.extra().hopDone = e
			s += p.slide
			continue
		}
		// No pane in [s, e): jump to the first window of the next pane.
		next := int64(math.MaxInt64)
		for _, w := range ks.windows {
			if w.start >= e {
				next = min(next, w.start)
			}
		}
		if next == math.MaxInt64 {
			break
		}
		s = max(s+p.slide, first(next))
	}
	for i := 0; i < len(ks.windows); i++ {
		if p.hopLastEnd(ks.windows[i].start) <= ks.wm {
			o.removeWindow(ks, i)
			i--
		}
	}
}

func resetWindow(w *window) {
	clear(w.vals)
	if w.sk != nil {
		clear(w.sk.s)
	}
	w.rows, w.late, w.dropped, w.parseErrors, w.revision = 0, 0, 0, 0, 0
}
