package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/mqtt/topic"
)

// Error is a syntax or semantic error in a query, at a position of its SQL.
type Error struct {
	Pos Pos
	// Expected names what the parser wanted there; empty for semantic
	// errors, whose Msg says what is wrong.
	Expected string
	Found    string
	Msg      string
}

func (e *Error) Error() string {
	if e.Expected != "" {
		return fmt.Sprintf("%s: expected %s, found %s", e.Pos, e.Expected, e.Found)
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

// Parse parses one SELECT statement (the grammar of docs/analytics.md).
func Parse(sql string) (*Query, error) {
	p := &parser{lx: newLexer(sql)}
	p.tok = p.lx.next()
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	return q, nil
}

type parser struct {
	lx  *lexer
	tok token
}

func (p *parser) advance() token {
	t := p.tok
	p.tok = p.lx.next()
	return t
}

func (p *parser) expected(what string) error {
	return &Error{Pos: p.tok.pos, Expected: what, Found: p.tok.describe()}
}

func semantic(pos Pos, format string, args ...any) error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// isKeyword reports whether the current token is the keyword kw.
func (p *parser) isKeyword(kw string) bool {
	return p.tok.kind == tokIdent && !p.tok.quoted && strings.EqualFold(p.tok.text, kw)
}

func (p *parser) keyword(kw string) error {
	if !p.isKeyword(kw) {
		return p.expected(kw)
	}
	p.advance()
	return nil
}

func (p *parser) isPunct(s string) bool { return p.tok.kind == tokPunct && p.tok.text == s }

func (p *parser) punct(s string) error {
	if !p.isPunct(s) {
		return p.expected("'" + s + "'")
	}
	p.advance()
	return nil
}

// reserved words cannot be bare field names or aliases.
var reserved = map[string]bool{
	"select": true, "from": true, "where": true, "group": true, "by": true, "having": true,
	"time": true, "lateness": true, "late": true, "emit": true, "as": true, "and": true,
	"or": true, "not": true, "is": true, "null": true, "true": true, "false": true,
}

func (p *parser) query() (*Query, error) {
	q := &Query{}
	if err := p.keyword("SELECT"); err != nil {
		return nil, err
	}
	for {
		it, err := p.selectItem()
		if err != nil {
			return nil, err
		}
		q.Select = append(q.Select, it)
		if !p.isPunct(",") {
			break
		}
		p.advance()
	}
	if err := p.keyword("FROM"); err != nil {
		return nil, p.expected("',' or FROM")
	}
	src, err := p.source()
	if err != nil {
		return nil, err
	}
	q.From = src
	if p.isKeyword("WHERE") {
		p.advance()
		if q.Where, err = p.expr(); err != nil {
			return nil, err
		}
	}
	if err := p.keyword("GROUP"); err != nil {
		if q.Where == nil {
			return nil, p.expected("WHERE or GROUP BY")
		}
		return nil, p.expected("GROUP BY")
	}
	if err := p.keyword("BY"); err != nil {
		return nil, err
	}
	if err := p.groupBy(q); err != nil {
		return nil, err
	}
	if p.isKeyword("HAVING") {
		p.advance()
		if q.Having, err = p.expr(); err != nil {
			return nil, err
		}
	}
	if err := p.tail(q); err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.expected("HAVING, TIME BY, LATENESS, LATE, EMIT or end of query")
	}
	return q, check(q)
}

// tail parses TIME BY, LATENESS, LATE and EMIT, each at most once, in
// any order.
func (p *parser) tail(q *Query) error {
	seen := map[string]bool{}
	for p.tok.kind == tokIdent && !p.tok.quoted {
		kw := strings.ToUpper(p.tok.text)
		switch kw {
		case "TIME", "LATENESS", "LATE", "EMIT":
		default:
			return nil
		}
		if seen[kw] {
			return semantic(p.tok.pos, "%s given twice", kw)
		}
		seen[kw] = true
		p.advance()
		switch kw {
		case "TIME":
			if err := p.keyword("BY"); err != nil {
				return err
			}
			f, err := p.field()
			if err != nil {
				return err
			}
			q.TimeBy = &f
		case "LATENESS":
			d, err := p.duration()
			if err != nil {
				return err
			}
			q.Lateness = d
		case "LATE":
			switch {
			case p.isKeyword("DROP"):
				q.Late = LateDrop
			case p.isKeyword("UPDATE"):
				q.Late = LateUpdate
			default:
				return p.expected("DROP or UPDATE")
			}
			p.advance()
		case "EMIT":
			switch {
			case p.isKeyword("ON"):
				p.advance()
				if err := p.keyword("CLOSE"); err != nil {
					return err
				}
			case p.isKeyword("EVERY"):
				p.advance()
				d, err := p.duration()
				if err != nil {
					return err
				}
				if d <= 0 {
					return semantic(p.tok.pos, "EMIT EVERY needs a positive duration")
				}
				q.EmitEvery = d
			default:
				return p.expected("ON CLOSE or EVERY")
			}
		}
	}
	return nil
}

func (p *parser) selectItem() (SelectItem, error) {
	pos := p.tok.pos
	if p.tok.kind != tokIdent {
		return SelectItem{}, p.expected("an aggregate or a group key")
	}
	var it SelectItem
	if name := strings.ToLower(p.tok.text); Aggregates[name] && !p.tok.quoted && p.peekCall() {
		agg, arg, text, err := p.aggCall()
		if err != nil {
			return SelectItem{}, err
		}
		it = SelectItem{Agg: agg, Arg: arg, Name: text, Pos: pos}
	} else {
		f, err := p.field()
		if err != nil {
			return SelectItem{}, err
		}
		it = SelectItem{Arg: &f, Name: f.Text, Pos: pos}
	}
	if p.isKeyword("AS") {
		p.advance()
		if p.tok.kind != tokIdent || (!p.tok.quoted && reserved[strings.ToLower(p.tok.text)]) {
			return SelectItem{}, p.expected("a column name")
		}
		it.Name = p.advance().text
	}
	return it, nil
}

// peekCall reports whether the identifier at hand is followed by '('.
func (p *parser) peekCall() bool {
	save := *p.lx
	next := p.lx.next()
	*p.lx = save
	return next.kind == tokPunct && next.text == "("
}

// aggCall parses name '(' ('*' | field) ')'.
func (p *parser) aggCall() (agg string, arg *Field, text string, err error) {
	agg = strings.ToLower(p.advance().text)
	if err := p.punct("("); err != nil {
		return "", nil, "", err
	}
	if p.isPunct("*") {
		if agg != "count" {
			return "", nil, "", semantic(p.tok.pos, "%s(*) is not defined: only count(*) takes *", agg)
		}
		p.advance()
		text = "count(*)"
	} else {
		f, err := p.field()
		if err != nil {
			return "", nil, "", err
		}
		arg = &f
		text = agg + "(" + f.Text + ")"
	}
	if err := p.punct(")"); err != nil {
		return "", nil, "", err
	}
	return agg, arg, text, nil
}

func (p *parser) source() (Source, error) {
	pos := p.tok.pos
	switch {
	case p.isKeyword("telemetry"):
		p.advance()
		return Source{Kind: FromTelemetry, Pos: pos}, nil
	case p.isKeyword("event"), p.isKeyword("events"):
		p.advance()
		return Source{Kind: FromEvent, Pos: pos}, nil
	case p.isKeyword("mqtt"), p.isKeyword("kafka"):
		kind := FromMQTT
		if p.isKeyword("kafka") {
			kind = FromKafka
		}
		p.advance()
		if p.tok.kind != tokString || p.tok.text == "" {
			return Source{}, p.expected("a quoted topic like 'plant/+/temp'")
		}
		argPos := p.tok.pos
		arg := p.advance().text
		if kind == FromMQTT {
			// A query sees every message of its filter: a shared group
			// would hand it only its share.
			if _, _, shared, err := topic.ParseShared(arg); shared {
				return Source{}, semantic(argPos, "FROM mqtt takes a plain topic filter, not the shared subscription %q", arg)
			} else if err != nil {
				return Source{}, semantic(argPos, "FROM mqtt %q: %v", arg, err)
			}
		}
		return Source{Kind: kind, Arg: arg, Pos: pos}, nil
	}
	return Source{}, p.expected("telemetry, event, mqtt '<filter>' or kafka '<topic>'")
}

func (p *parser) groupBy(q *Query) error {
	for {
		pos := p.tok.pos
		if p.tok.kind == tokIdent && !p.tok.quoted && p.peekCall() {
			switch strings.ToUpper(p.tok.text) {
			case "TUMBLE", "HOP", "SESSION", "COUNT":
				if q.Window.Kind != 0 {
					return semantic(pos, "GROUP BY takes one window, %s is a second", strings.ToUpper(p.tok.text))
				}
				w, err := p.window()
				if err != nil {
					return err
				}
				q.Window = w
			default:
				return p.expected("TUMBLE, HOP, SESSION, COUNT or a group key")
			}
		} else {
			f, err := p.field()
			if err != nil {
				return p.expected("a group key or a window (TUMBLE, HOP, SESSION, COUNT)")
			}
			q.Keys = append(q.Keys, f)
		}
		if !p.isPunct(",") {
			break
		}
		p.advance()
	}
	if q.Window.Kind == 0 {
		return semantic(p.tok.pos, "GROUP BY needs a window: TUMBLE(d), HOP(size, slide), SESSION(gap) or COUNT(n)")
	}
	return nil
}

func (p *parser) window() (Window, error) {
	w := Window{Pos: p.tok.pos}
	switch strings.ToUpper(p.advance().text) {
	case "TUMBLE":
		w.Kind = Tumble
	case "HOP":
		w.Kind = Hop
	case "SESSION":
		w.Kind = Session
	case "COUNT":
		w.Kind = CountWindow
	}
	if err := p.punct("("); err != nil {
		return w, err
	}
	var err error
	switch w.Kind {
	case CountWindow:
		if p.tok.kind != tokNumber {
			return w, p.expected("a number of rows")
		}
		pos := p.tok.pos
		n, perr := strconv.ParseInt(p.advance().text, 10, 64)
		if perr != nil || n <= 0 || n > 1<<31 {
			return w, semantic(pos, "COUNT needs a whole number of rows from 1 to 2^31")
		}
		w.Rows = n
	default:
		if w.Size, err = p.duration(); err != nil {
			return w, err
		}
		if w.Size < time.Millisecond {
			return w, semantic(w.Pos, "%s needs a duration of at least 1ms", w.Kind)
		}
		if w.Kind == Hop {
			if err := p.punct(","); err != nil {
				return w, err
			}
			pos := p.tok.pos
			if w.Slide, err = p.duration(); err != nil {
				return w, err
			}
			if w.Slide < time.Millisecond || w.Slide > w.Size {
				return w, semantic(pos, "HOP's slide must be from 1ms to the window size")
			}
			if w.Size%time.Millisecond != 0 || w.Slide%time.Millisecond != 0 {
				return w, semantic(pos, "HOP's size and slide must be whole milliseconds")
			}
			if panes := w.Size / gcd(w.Size, w.Slide); panes > 10_000 {
				return w, semantic(pos, "HOP(%s, %s) needs %d panes per window; at most 10000", fmtDuration(w.Size), fmtDuration(w.Slide), panes)
			}
		}
	}
	if err := p.punct(")"); err != nil {
		return w, err
	}
	return w, nil
}

func gcd(a, b time.Duration) time.Duration {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// units of durations, in the order the lexer may see them.
var units = map[string]time.Duration{
	"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour,
}

// duration parses a duration token such as 30s, 1.5m or 500ms.
func (p *parser) duration() (time.Duration, error) {
	if p.tok.kind != tokDuration {
		return 0, p.expected("a duration like 30s, 1m or 500ms")
	}
	t := p.advance()
	i := strings.IndexFunc(t.text, isIdentStart)
	num, unit := t.text[:i], strings.ToLower(t.text[i:])
	u, ok := units[unit]
	if !ok {
		return 0, semantic(t.pos, "unknown unit %q in %s: use ms, s, m, h or d", t.text[i:], t.text)
	}
	v, err := strconv.ParseFloat(num, 64)
	d := v * float64(u)
	if err != nil || d > float64(366*24*time.Hour) || math.IsNaN(d) {
		return 0, semantic(t.pos, "duration %s out of range (at most 366d)", t.text)
	}
	return time.Duration(d), nil
}

// field parses device_id, tenant_id, topic[n], prop.<name>,
// device.ext.<k> or a payload path a.b[0].
func (p *parser) field() (Field, error) {
	if p.tok.kind != tokIdent || (!p.tok.quoted && reserved[strings.ToLower(p.tok.text)]) {
		return Field{}, p.expected("a field name")
	}
	first := p.advance()
	f := Field{Pos: first.pos}
	path := []PathElem{{Key: first.text}}
	for p.isPunct(".") || p.isPunct("[") {
		if p.isPunct(".") {
			p.advance()
			if p.tok.kind != tokIdent {
				return Field{}, p.expected("a member name after '.'")
			}
			path = append(path, PathElem{Key: p.advance().text})
			continue
		}
		p.advance()
		if p.tok.kind != tokNumber {
			return Field{}, p.expected("an array index")
		}
		pos := p.tok.pos
		n, err := strconv.Atoi(p.advance().text)
		if err != nil || n < 0 || n > 1<<20 {
			return Field{}, semantic(pos, "an index is a whole number from 0 to 2^20")
		}
		path = append(path, PathElem{Index: n, IsIndex: true})
		if err := p.punct("]"); err != nil {
			return Field{}, err
		}
	}
	f.Text = pathText(path)
	head := path[0]
	switch {
	case first.quoted:
		f.Kind = FieldPayload
	case len(path) == 1 && head.Key == "device_id":
		f.Kind = FieldDevice
	case len(path) == 1 && head.Key == "tenant_id":
		f.Kind = FieldTenant
	case head.Key == "topic" && len(path) == 2 && path[1].IsIndex:
		f.Kind, f.Level = FieldTopic, path[1].Index
	case head.Key == "prop" && len(path) == 2 && !path[1].IsIndex:
		f.Kind, f.Name = FieldProp, path[1].Key
	case head.Key == "device" && len(path) == 3 && path[1].Key == "ext" && !path[2].IsIndex:
		f.Kind, f.Name = FieldDeviceExt, path[2].Key
	case head.Key == "device" && len(path) >= 2 && path[1].Key == "ext":
		return Field{}, semantic(f.Pos, "device.ext takes one key: device.ext.<name>")
	default:
		f.Kind = FieldPayload
	}
	f.Path = path
	return f, nil
}

func pathText(path []PathElem) string {
	var b strings.Builder
	for i, e := range path {
		switch {
		case e.IsIndex:
			b.WriteString("[" + strconv.Itoa(e.Index) + "]")
		case i > 0:
			b.WriteString("." + e.Key)
		default:
			b.WriteString(e.Key)
		}
	}
	return b.String()
}

// Expressions, loosest first: OR, AND, NOT, comparison and IS NULL,
// + -, * /, unary minus, primary.

func (p *parser) expr() (Expr, error) { return p.binary(0) }

var levels = [][]string{{"OR"}, {"AND"}, nil, {"=", "!=", "<>", "<", "<=", ">", ">="}, {"+", "-"}, {"*", "/"}}

func (p *parser) matchOp(ops []string) (string, bool) {
	for _, op := range ops {
		if (op == "OR" || op == "AND") && p.isKeyword(op) {
			return op, true
		}
		if p.isPunct(op) {
			if op == "<>" {
				return "!=", true
			}
			return op, true
		}
	}
	return "", false
}

func (p *parser) binary(level int) (Expr, error) {
	if level == len(levels) {
		return p.unary()
	}
	if levels[level] == nil { // NOT
		if p.isKeyword("NOT") {
			pos := p.advance().pos
			x, err := p.binary(level)
			if err != nil {
				return nil, err
			}
			return &Unary{Op: "NOT", X: x, Pos: pos}, nil
		}
		return p.binary(level + 1)
	}
	l, err := p.binary(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		if level == 3 && p.isKeyword("IS") {
			pos := p.advance().pos
			not := p.isKeyword("NOT")
			if not {
				p.advance()
			}
			if err := p.keyword("NULL"); err != nil {
				return nil, err
			}
			l = &IsNull{X: l, Not: not, Pos: pos}
			continue
		}
		op, ok := p.matchOp(levels[level])
		if !ok {
			return l, nil
		}
		pos := p.advance().pos
		r, err := p.binary(level + 1)
		if err != nil {
			return nil, err
		}
		l = &Binary{Op: op, L: l, R: r, Pos: pos}
		if level == 3 {
			// Comparisons do not chain: a < b < c is an error.
			if _, again := p.matchOp(levels[level]); again {
				return nil, p.expected("AND, OR or the end of the comparison")
			}
		}
	}
}

func (p *parser) unary() (Expr, error) {
	if p.isPunct("-") {
		pos := p.advance().pos
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &Unary{Op: "-", X: x, Pos: pos}, nil
	}
	return p.primary()
}

func (p *parser) primary() (Expr, error) {
	t := p.tok
	switch {
	case t.kind == tokNumber:
		p.advance()
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, semantic(t.pos, "number %s out of range", t.text)
		}
		return &Literal{Value: v, Pos: t.pos}, nil
	case t.kind == tokString:
		p.advance()
		return &Literal{Value: t.text, Pos: t.pos}, nil
	case p.isPunct("("):
		p.advance()
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.punct(")"); err != nil {
			return nil, err
		}
		return x, nil
	case p.isKeyword("TRUE"), p.isKeyword("FALSE"):
		p.advance()
		return &Literal{Value: strings.EqualFold(t.text, "true"), Pos: t.pos}, nil
	case p.isKeyword("NULL"):
		p.advance()
		return &Literal{Pos: t.pos}, nil
	case t.kind == tokIdent && !t.quoted && Aggregates[strings.ToLower(t.text)] && p.peekCall():
		agg, arg, _, err := p.aggCall()
		if err != nil {
			return nil, err
		}
		return &AggRef{Agg: agg, Arg: arg, Pos: t.pos}, nil
	case t.kind == tokIdent:
		f, err := p.field()
		if err != nil {
			return nil, err
		}
		return &FieldRef{Field: f}, nil
	}
	return nil, p.expected("a value, a field or '('")
}

// check applies the rules the grammar alone does not: select items are
// aggregates or group keys, names are unique, and aggregates appear only
// in SELECT and HAVING.
func check(q *Query) error {
	keys := map[string]bool{}
	for _, k := range q.Keys {
		keys[k.Text] = true
	}
	names := map[string]bool{}
	for _, it := range q.Select {
		if it.Agg == "" && !keys[it.Arg.Text] {
			return semantic(it.Pos, "%s is neither an aggregate nor a GROUP BY key", it.Arg.Text)
		}
		if names[it.Name] {
			return semantic(it.Pos, "column %s appears twice; name one with AS", it.Name)
		}
		names[it.Name] = true
	}
	for _, n := range []string{"query", "window_start", "window_end", "revision", "final", "late", "dropped", "parse_errors", "id"} {
		if names[n] {
			return semantic(q.Select[0].Pos, "column name %s is reserved for the row's own fields", n)
		}
	}
	if q.Where != nil {
		if pos, ok := findAgg(q.Where); ok {
			return semantic(pos, "aggregates are not allowed in WHERE; use HAVING")
		}
	}
	if q.Window.Kind == CountWindow && q.Late == LateUpdate {
		return semantic(q.Window.Pos, "LATE UPDATE needs a time window; COUNT windows have no late rows")
	}
	return nil
}

func findAgg(e Expr) (Pos, bool) {
	switch e := e.(type) {
	case *AggRef:
		return e.Pos, true
	case *Binary:
		if pos, ok := findAgg(e.L); ok {
			return pos, true
		}
		return findAgg(e.R)
	case *Unary:
		return findAgg(e.X)
	case *IsNull:
		return findAgg(e.X)
	}
	return Pos{}, false
}
