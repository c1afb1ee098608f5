// Package engine runs one analytics query over a stream of messages:
// field extraction, WHERE, per-key event-time windows with incremental
// aggregates, watermarks, late and idle handling, HAVING and the result
// rows.
//
// # Basics
//
// Compile turns a parsed query into a Plan; NewOperator gives a Plan its
// state. Process takes one message, Tick advances the wall clock (idle
// close, EMIT EVERY); both call the emit function with each result row.
// No raw rows are kept: a window holds a few float64 per aggregate and a
// DDSketch per percentile field.
//
// # Caveats
//
// An Operator is owned by one goroutine: Process, Tick, Explain and the
// checkpoint methods must not run concurrently. Its Stats are atomic and
// may be read from anywhere.
package engine

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/analytics/fields"
	"github.com/ferry-iot/ferry/internal/analytics/query"
)

// Plan is a compiled query; it holds no state and may be shared.
type Plan struct {
	Name, Tenant string
	Query        *query.Query
	lateness     int64 // ms
	skew         int64 // ms
	clampFuture  bool
	size, slide  int64 // ms; HOP panes are gcd(size, slide)
	pane         int64
	every        int64 // ms; EMIT EVERY

	extract *fields.Extractor // payload paths; nil when none
	slots   []slot            // every field the query reads; payload ones first
	bySlot  map[string]int    // field text -> slot
	keys    []int             // key slots
	// deviceSharded says the key is the device (with perhaps the
	// tenant), so that keys can be spread over operators by device.
	deviceSharded bool
	timeSlot      int // -1: arrival time
	where         func([]fields.Value) fields.Value
	needExt       bool
	needTopic     bool

	args    []argCount // one per distinct aggregated field
	aggs    []agg
	nvals   int
	nsketch int

	// Output: key columns then aggregate columns, in SELECT order within
	// each group.
	keyNames []string
	cols     []column
	// having reads the vector keys ++ aggregate values.
	having func([]fields.Value) fields.Value
}

type slot struct {
	field query.Field
}

type argCount struct {
	slot  int // field slot
	count int // vals index of its count
}

type agg struct {
	fn    string
	arg   int // field slot, -1 for count(*)
	count int // vals index of the field's count
	val   int // first vals index of its own state
	sk    int // sketch index (percentiles)
	q     float64
}

type column struct {
	name string
	agg  int // index into aggs
}

// Compile checks a query's semantics against the engine and returns its
// plan.
func Compile(spec *query.Spec) (*Plan, error) {
	q := spec.Query
	if q == nil {
		var err error
		if q, err = query.Parse(spec.SQL); err != nil {
			return nil, err
		}
	}
	p := &Plan{Name: spec.Name, Tenant: spec.Tenant, Query: q, bySlot: map[string]int{}, timeSlot: -1,
		lateness: q.Lateness.Milliseconds(), skew: time.Duration(spec.MaxFutureSkew).Milliseconds(),
		clampFuture: spec.Future == "clamp", every: q.EmitEvery.Milliseconds()}
	if p.skew <= 0 {
		p.skew = query.DefaultMaxFutureSkew.Milliseconds()
	}
	w := q.Window
	p.size, p.slide = w.Size.Milliseconds(), w.Slide.Milliseconds()
	if w.Kind == query.Hop {
		p.pane = gcd(p.size, p.slide)
		if q.Late == query.LateUpdate {
			return nil, &query.Error{Pos: w.Pos, Msg: "LATE UPDATE is not supported with HOP windows"}
		}
	}
	// Payload fields first, so that the extractor's out is a prefix.
	var fieldsUsed []query.Field
	collect := func(f query.Field) { fieldsUsed = append(fieldsUsed, f) }
	for _, k := range q.Keys {
		collect(k)
	}
	for _, it := range q.Select {
		if it.Arg != nil {
			collect(*it.Arg)
		}
	}
	if q.TimeBy != nil {
		collect(*q.TimeBy)
	}
	walkFields(q.Where, collect)
	walkAggArgs(q.Having, collect)
	var paths [][]fields.Elem
	for _, payload := range []bool{true, false} {
		for _, f := range fieldsUsed {
			if (f.Kind == query.FieldPayload) != payload {
				continue
			}
			if _, ok := p.bySlot[f.Text]; ok {
				continue
			}
			p.bySlot[f.Text] = len(p.slots)
			p.slots = append(p.slots, slot{field: f})
			if payload {
				path := make([]fields.Elem, len(f.Path))
				for i, e := range f.Path {
					path[i] = fields.Elem{Key: e.Key, Index: e.Index, IsIndex: e.IsIndex}
				}
				paths = append(paths, path)
			}
			switch f.Kind {
			case query.FieldDeviceExt:
				p.needExt = true
			case query.FieldTopic:
				p.needTopic = true
			}
		}
	}
	if len(paths) > 0 {
		p.extract = fields.Compile(paths)
	}
	p.deviceSharded = len(q.Keys) > 0
	for _, k := range q.Keys {
		p.keys = append(p.keys, p.bySlot[k.Text])
		p.keyNames = append(p.keyNames, k.Text)
		if k.Kind != query.FieldDevice && k.Kind != query.FieldTenant {
			p.deviceSharded = false
		}
	}
	if q.TimeBy != nil {
		p.timeSlot = p.bySlot[q.TimeBy.Text]
	}
	if q.Where != nil {
		var err error
		if p.where, err = p.compileExpr(q.Where, p.fieldRef); err != nil {
			return nil, err
		}
	}
	// Select: keys under their alias; aggregates in order.
	for _, it := range q.Select {
		if it.Agg == "" {
			for i, k := range q.Keys {
				if k.Text == it.Arg.Text {
					p.keyNames[i] = it.Name
				}
			}
			continue
		}
		p.cols = append(p.cols, column{name: it.Name, agg: p.addAgg(it.Agg, it.Arg)})
	}
	if q.Having != nil {
		var err error
		if p.having, err = p.compileExpr(q.Having, p.columnRef); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func walkFields(e query.Expr, f func(query.Field)) {
	switch e := e.(type) {
	case *query.FieldRef:
		f(e.Field)
	case *query.Binary:
		walkFields(e.L, f)
		walkFields(e.R, f)
	case *query.Unary:
		walkFields(e.X, f)
	case *query.IsNull:
		walkFields(e.X, f)
	}
}

func walkAggArgs(e query.Expr, f func(query.Field)) {
	switch e := e.(type) {
	case *query.AggRef:
		if e.Arg != nil {
			f(*e.Arg)
		}
	case *query.Binary:
		walkAggArgs(e.L, f)
		walkAggArgs(e.R, f)
	case *query.Unary:
		walkAggArgs(e.X, f)
	case *query.IsNull:
		walkAggArgs(e.X, f)
	}
}

// addAgg returns the index of the aggregate fn(arg), adding it (and its
// state) when new.
func (p *Plan) addAgg(fn string, arg *query.Field) int {
	a := agg{fn: fn, arg: -1, count: -1, sk: -1}
	if arg != nil {
		a.arg = p.bySlot[arg.Text]
	}
	for i, o := range p.aggs {
		if o.fn == a.fn && o.arg == a.arg {
			return i
		}
	}
	if a.arg >= 0 {
		for _, c := range p.args {
			if c.slot == a.arg {
				a.count = c.count
			}
		}
		if a.count < 0 {
			a.count = p.nvals
			p.args = append(p.args, argCount{slot: a.arg, count: p.nvals})
			p.nvals++
		}
	}
	switch fn {
	case "count":
	case "sum", "avg", "min", "max":
		a.val = p.nvals
		p.nvals++
	case "first", "last":
		a.val = p.nvals // value, event time
		p.nvals += 2
	case "stddev":
		a.val = p.nvals // mean, m2
		p.nvals += 2
	default: // p50 ... p99: one sketch per field
		fmt.Sscanf(fn[1:], "%g", &a.q)
		a.q /= 100
		for _, o := range p.aggs {
			if o.sk >= 0 && o.arg == a.arg {
				a.sk = o.sk
			}
		}
		if a.sk < 0 {
			a.sk = p.nsketch
			p.nsketch++
		}
	}
	p.aggs = append(p.aggs, a)
	return len(p.aggs) - 1
}

// fieldRef resolves a WHERE field to its slot.
func (p *Plan) fieldRef(e query.Expr) (int, error) {
	switch e := e.(type) {
	case *query.FieldRef:
		return p.bySlot[e.Field.Text], nil
	case *query.AggRef:
		return 0, &query.Error{Pos: e.Pos, Msg: "aggregates are not allowed in WHERE"}
	}
	return 0, fmt.Errorf("unexpected %T", e)
}

// columnRef resolves a HAVING name to its index in keys ++ aggregates.
func (p *Plan) columnRef(e query.Expr) (int, error) {
	switch e := e.(type) {
	case *query.FieldRef:
		for _, c := range p.cols {
			if c.name == e.Field.Text {
				return len(p.keys) + c.agg, nil
			}
		}
		for i, k := range p.Query.Keys {
			if k.Text == e.Field.Text || p.keyNames[i] == e.Field.Text {
				return i, nil
			}
		}
		return 0, &query.Error{Pos: e.Field.Pos, Msg: fmt.Sprintf("HAVING refers to %s, which is neither a column nor a GROUP BY key", e.Field.Text)}
	case *query.AggRef:
		return len(p.keys) + p.addAgg(e.Agg, e.Arg), nil
	}
	return 0, fmt.Errorf("unexpected %T", e)
}

// compileExpr turns e into a closure over a value vector; ref resolves
// field and aggregate references to indexes.
func (p *Plan) compileExpr(e query.Expr, ref func(query.Expr) (int, error)) (func([]fields.Value) fields.Value, error) {
	switch e := e.(type) {
	case *query.Literal:
		var v fields.Value
		switch x := e.Value.(type) {
		case float64:
			v = fields.NumberValue(x)
		case string:
			v = fields.StringValue(x)
		case bool:
			v = fields.BoolValue(x)
		}
		return func([]fields.Value) fields.Value { return v }, nil
	case *query.FieldRef, *query.AggRef:
		i, err := ref(e)
		if err != nil {
			return nil, err
		}
		return func(vs []fields.Value) fields.Value { return vs[i] }, nil
	case *query.IsNull:
		x, err := p.compileExpr(e.X, ref)
		if err != nil {
			return nil, err
		}
		not := e.Not
		return func(vs []fields.Value) fields.Value { return fields.BoolValue((x(vs).Kind == fields.Null) != not) }, nil
	case *query.Unary:
		x, err := p.compileExpr(e.X, ref)
		if err != nil {
			return nil, err
		}
		if e.Op == "NOT" {
			return func(vs []fields.Value) fields.Value {
				v := x(vs)
				if v.Kind != fields.Bool {
					return fields.Value{}
				}
				return fields.BoolValue(v.Num == 0)
			}, nil
		}
		return func(vs []fields.Value) fields.Value {
			v := x(vs)
			if v.Kind != fields.Number {
				return fields.Value{}
			}
			return fields.NumberValue(-v.Num)
		}, nil
	case *query.Binary:
		l, err := p.compileExpr(e.L, ref)
		if err != nil {
			return nil, err
		}
		r, err := p.compileExpr(e.R, ref)
		if err != nil {
			return nil, err
		}
		return binaryOp(e.Op, l, r), nil
	}
	return nil, fmt.Errorf("unexpected expression %T", e)
}

func binaryOp(op string, l, r func([]fields.Value) fields.Value) func([]fields.Value) fields.Value {
	switch op {
	case "AND", "OR":
		and := op == "AND"
		return func(vs []fields.Value) fields.Value {
			a, b := l(vs), r(vs)
			at, af := a.Kind == fields.Bool && a.Num != 0, a.Kind == fields.Bool && a.Num == 0
			bt, bf := b.Kind == fields.Bool && b.Num != 0, b.Kind == fields.Bool && b.Num == 0
			switch {
			case and && (af || bf):
				return fields.BoolValue(false)
			case and && at && bt:
				return fields.BoolValue(true)
			case !and && (at || bt):
				return fields.BoolValue(true)
			case !and && af && bf:
				return fields.BoolValue(false)
			}
			return fields.Value{} // unknown
		}
	case "+", "-", "*", "/":
		return func(vs []fields.Value) fields.Value {
			a, b := l(vs), r(vs)
			if a.Kind != fields.Number || b.Kind != fields.Number {
				return fields.Value{}
			}
			var f float64
			switch op {
			case "+":
				f = a.Num + b.Num
			case "-":
				f = a.Num - b.Num
			case "*":
				f = a.Num * b.Num
			default:
				if b.Num == 0 {
					return fields.Value{}
				}
				f = a.Num / b.Num
			}
			return fields.NumberValue(f)
		}
	}
	return func(vs []fields.Value) fields.Value {
		a, b := l(vs), r(vs)
		if a.Kind == fields.Null || b.Kind == fields.Null {
			return fields.Value{}
		}
		var c int
		switch {
		case a.Kind == fields.String && b.Kind == fields.String:
			c = strings.Compare(a.Str, b.Str)
		case a.Kind == fields.String || b.Kind == fields.String:
			return fields.BoolValue(op == "!=") // a string and a number: only != holds
		default: // numbers and booleans (as 0 and 1)
			c = cmpFloat(a.Num, b.Num)
		}
		switch op {
		case "=":
			return fields.BoolValue(c == 0)
		case "!=":
			return fields.BoolValue(c != 0)
		case "<":
			return fields.BoolValue(c < 0)
		case "<=":
			return fields.BoolValue(c <= 0)
		case ">":
			return fields.BoolValue(c > 0)
		}
		return fields.BoolValue(c >= 0)
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DeviceSharded reports whether the query's key is the device, so that
// messages may be spread over several operators by device.
func (p *Plan) DeviceSharded() bool { return p.deviceSharded }

// NeedsTopic reports whether the query reads topic levels.
func (p *Plan) NeedsTopic() bool { return p.needTopic }

// NeedsExt reports whether the query reads device.ext fields.
func (p *Plan) NeedsExt() bool { return p.needExt }

// Describe is the plan as explain shows it.
func (p *Plan) Describe() []string {
	q := p.Query
	out := []string{"source: " + q.From.Kind.String()}
	if q.From.Arg != "" {
		out[0] += " '" + q.From.Arg + "'"
	}
	var paths []string
	for _, s := range p.slots {
		if s.field.Kind == query.FieldPayload {
			paths = append(paths, s.field.Text)
		}
	}
	if len(paths) > 0 {
		out = append(out, "extract (one JSON pass): "+strings.Join(paths, ", "))
	}
	if q.Where != nil {
		out = append(out, "filter: WHERE")
	}
	keys := strings.Join(p.keyNames, ", ")
	if keys == "" {
		keys = "(none: one group)"
	}
	out = append(out, "key: "+keys)
	win := "window: " + q.Window.String()
	if q.Window.Kind == query.Hop {
		win += fmt.Sprintf(", panes of %dms merged", p.pane)
	}
	out = append(out, win)
	t := "event time: arrival (creation-time)"
	if q.TimeBy != nil {
		t = "event time: " + q.TimeBy.Text
	}
	out = append(out, fmt.Sprintf("%s; watermark per key = max event time - %v; future skew cap %v (%s); idle close at end + lateness + 1s of the key's clock",
		t, q.Lateness, time.Duration(p.skew)*time.Millisecond, map[bool]string{true: "clamp", false: "drop"}[p.clampFuture]))
	var aggs []string
	for _, a := range p.aggs {
		arg := "*"
		if a.arg >= 0 {
			arg = p.slots[a.arg].field.Text
		}
		aggs = append(aggs, a.fn+"("+arg+")")
	}
	out = append(out, fmt.Sprintf("aggregates: %s (%d float64 and %d sketches per window)", strings.Join(aggs, ", "), p.nvals, p.nsketch))
	late := "late rows: dropped and counted"
	if q.Late == query.LateUpdate {
		late = "late rows: window emitted again with revision + 1"
	}
	out = append(out, late)
	if p.every > 0 {
		out = append(out, fmt.Sprintf("emit: every %v while open, and on close", q.EmitEvery))
	} else {
		out = append(out, "emit: on close")
	}
	if q.Having != nil {
		out = append(out, "filter: HAVING")
	}
	return out
}

// toMillis reads an event time: a number is Unix time in seconds,
// milliseconds, microseconds or nanoseconds, told apart by magnitude; a
// string is RFC 3339.
func toMillis(v fields.Value) (int64, bool) {
	switch v.Kind {
	case fields.Number:
		f := v.Num
		switch a := math.Abs(f); {
		case a >= 1e17:
			f /= 1e6
		case a >= 1e14:
			f /= 1e3
		case a >= 1e11:
		default:
			f *= 1e3
		}
		if math.IsNaN(f) || math.Abs(f) > 1e15 {
			return 0, false
		}
		return int64(math.Floor(f)), true
	case fields.String:
		t, err := time.Parse(time.RFC3339Nano, v.Str)
		if err != nil {
			return 0, false
		}
		return t.UnixMilli(), true
	}
	return 0, false
}
