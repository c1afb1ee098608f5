package query

import (
	"strconv"
	"strings"
	"time"
)

// Query is one parsed SELECT statement.
type Query struct {
	Select []SelectItem
	From   Source
	Where  Expr // nil: every row
	// Keys are the GROUP BY fields besides the window, in order.
	Keys   []Field
	Window Window
	Having Expr // nil: every row is emitted
	// TimeBy is the event-time field; nil: the message's arrival time
	// (Hono's creation-time).
	TimeBy   *Field
	Lateness time.Duration
	Late     LatePolicy
	// EmitEvery, if positive, emits early rows at that wall-clock period
	// while a window is open (EMIT EVERY d); zero is EMIT ON CLOSE.
	EmitEvery time.Duration
}

// SelectItem is one output column: an aggregate call or a group key.
type SelectItem struct {
	// Agg is the aggregate's lower-case name (count, sum, avg, min, max,
	// first, last, stddev, p50, p90, p95, p99); empty for a group key.
	Agg string
	// Arg is the aggregated field, or the key; nil for count(*).
	Arg *Field
	// Name is the column name: the alias, else the field's text or the
	// call as written ("count(*)").
	Name string
	Pos  Pos
}

// Aggregates lists the aggregate functions, each O(1) in state per window.
var Aggregates = map[string]bool{
	"count": true, "sum": true, "avg": true, "min": true, "max": true,
	"first": true, "last": true, "stddev": true,
	"p50": true, "p90": true, "p95": true, "p99": true,
}

// SourceKind is what a query reads.
type SourceKind int

// Sources.
const (
	FromTelemetry SourceKind = iota + 1
	FromEvent
	FromMQTT  // a topic filter of the tenant's plain MQTT traffic
	FromKafka // a Kafka topic (scale-out mode)
)

func (k SourceKind) String() string {
	switch k {
	case FromTelemetry:
		return "telemetry"
	case FromEvent:
		return "event"
	case FromMQTT:
		return "mqtt"
	case FromKafka:
		return "kafka"
	}
	return "unknown"
}

// Source is the FROM clause.
type Source struct {
	Kind SourceKind
	// Arg is the MQTT topic filter or the Kafka topic.
	Arg string
	Pos Pos
}

// WindowKind is the GROUP BY window function.
type WindowKind int

// Windows.
const (
	Tumble WindowKind = iota + 1
	Hop
	Session
	CountWindow
)

func (k WindowKind) String() string {
	switch k {
	case Tumble:
		return "TUMBLE"
	case Hop:
		return "HOP"
	case Session:
		return "SESSION"
	case CountWindow:
		return "COUNT"
	}
	return "unknown"
}

// Window is the window of GROUP BY.
type Window struct {
	Kind WindowKind
	// Size is TUMBLE's and HOP's length, SESSION's gap.
	Size time.Duration
	// Slide is HOP's step.
	Slide time.Duration
	// Rows is COUNT's number of rows.
	Rows int64
	Pos  Pos
}

func (w Window) String() string {
	switch w.Kind {
	case Hop:
		return "HOP(" + fmtDuration(w.Size) + ", " + fmtDuration(w.Slide) + ")"
	case CountWindow:
		return "COUNT(" + strconv.FormatInt(w.Rows, 10) + ")"
	}
	return w.Kind.String() + "(" + fmtDuration(w.Size) + ")"
}

func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// LatePolicy says what becomes of a row whose window was emitted already.
type LatePolicy int

// Late policies.
const (
	LateDrop   LatePolicy = iota // dropped and counted (the default)
	LateUpdate                   // the window is emitted again, revision + 1
)

// FieldKind is where a field's value comes from.
type FieldKind int

// Field kinds.
const (
	FieldPayload   FieldKind = iota + 1 // a JSON path into the payload
	FieldDevice                         // device_id
	FieldTenant                         // tenant_id
	FieldTopic                          // topic[n]: a level of the topic
	FieldProp                           // prop.<name>: an application or user property
	FieldDeviceExt                      // device.ext.<k>: the registry's device ext
)

// PathElem is one step of a payload path: a member name or an array index.
type PathElem struct {
	Key   string
	Index int // when IsIndex
	// IsIndex marks an [n] step.
	IsIndex bool
}

// Field is a value a row yields.
type Field struct {
	Kind FieldKind
	// Path is the payload path (FieldPayload).
	Path []PathElem
	// Name is the property or ext key (FieldProp, FieldDeviceExt).
	Name string
	// Level is the topic level (FieldTopic), from 0.
	Level int
	// Text is the field as a canonical string: "temp", "a.b[0]",
	// "device.ext.site", "topic[1]".
	Text string
	Pos  Pos
}

// Expr is a WHERE or HAVING expression.
type Expr interface{ exprPos() Pos }

// Binary is L op R: op is one of OR AND = != < <= > >= + - * /.
type Binary struct {
	Op   string
	L, R Expr
	Pos  Pos
}

// Unary is NOT x or -x.
type Unary struct {
	Op  string
	X   Expr
	Pos Pos
}

// IsNull is x IS [NOT] NULL.
type IsNull struct {
	X   Expr
	Not bool
	Pos Pos
}

// Literal is a number, string, boolean or NULL (Value nil).
type Literal struct {
	Value any // float64, string, bool or nil
	Pos   Pos
}

// FieldRef reads a field (WHERE) or, in HAVING, a column by name.
type FieldRef struct {
	Field Field
}

// AggRef is an aggregate call inside HAVING.
type AggRef struct {
	Agg string
	Arg *Field // nil: *
	Pos Pos
}

func (e *Binary) exprPos() Pos   { return e.Pos }
func (e *Unary) exprPos() Pos    { return e.Pos }
func (e *IsNull) exprPos() Pos   { return e.Pos }
func (e *Literal) exprPos() Pos  { return e.Pos }
func (e *FieldRef) exprPos() Pos { return e.Field.Pos }
func (e *AggRef) exprPos() Pos   { return e.Pos }
