// Package fields extracts the values a query reads from a JSON payload in
// one pass, without decoding the rest of the document and, for numbers,
// without allocating.
//
// # Basics
//
// Compile turns a set of paths (temp, a.b[0]) into an Extractor; Extract
// fills one Value per path. A path whose value is missing, an object or an
// array reads as Null.
//
// # Caveats
//
// A document with duplicate member names yields the last one. Strings are
// copied (one allocation each); only read them when a query needs them.
package fields

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is a Value's type.
type Kind uint8

// Kinds.
const (
	Null Kind = iota
	Number
	String
	Bool
)

// Value is one field's value.
type Value struct {
	Kind Kind
	Num  float64 // Number; Bool as 0 or 1
	Str  string  // String
}

// NumberValue returns a Number.
func NumberValue(f float64) Value { return Value{Kind: Number, Num: f} }

// StringValue returns a String.
func StringValue(s string) Value { return Value{Kind: String, Str: s} }

// BoolValue returns a Bool.
func BoolValue(b bool) Value {
	if b {
		return Value{Kind: Bool, Num: 1}
	}
	return Value{Kind: Bool}
}

// Elem is one step of a path: a member name or, with IsIndex, an index.
type Elem struct {
	Key     string
	Index   int
	IsIndex bool
}

// node is a step of the extraction trie.
type node struct {
	slot    int // the value's index in Extract's out, or -1
	members []member
	indexes []index
}

type member struct {
	key string
	n   *node
}

type index struct {
	i int
	n *node
}

// Extractor reads a fixed set of paths. It is safe for concurrent use.
type Extractor struct {
	root  *node
	slots int
}

// Compile returns an Extractor for paths; Extract's out[i] is paths[i].
func Compile(paths [][]Elem) *Extractor {
	root := &node{slot: -1}
	for slot, p := range paths {
		n := root
		for _, e := range p {
			n = n.child(e)
		}
		n.slot = slot
	}
	return &Extractor{root: root, slots: len(paths)}
}

func (n *node) child(e Elem) *node {
	if e.IsIndex {
		for _, c := range n.indexes {
			if c.i == e.Index {
				return c.n
			}
		}
		c := &node{slot: -1}
		n.indexes = append(n.indexes, index{e.Index, c})
		return c
	}
	for _, c := range n.members {
		if c.key == e.Key {
			return c.n
		}
	}
	c := &node{slot: -1}
	n.members = append(n.members, member{e.Key, c})
	return c
}

// Slots is the number of paths.
func (x *Extractor) Slots() int { return x.slots }

// ErrSyntax is a payload that is not JSON.
var ErrSyntax = errors.New("payload is not valid JSON")

// Extract sets out[i] (len(out) >= Slots) to the value of path i in
// data. It returns ErrSyntax for a document that is not JSON; the values
// found before the error are kept.
func (x *Extractor) Extract(data []byte, out []Value) error {
	for i := range out[:x.slots] {
		out[i] = Value{}
	}
	s := scanner{data: data}
	s.space()
	if err := s.value(x.root, out); err != nil {
		return err
	}
	s.space()
	if s.pos != len(s.data) {
		return ErrSyntax
	}
	return nil
}

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value reads one value; n (nil: not wanted) says what to keep of it.
func (s *scanner) value(n *node, out []Value) error {
	if s.pos >= len(s.data) {
		return ErrSyntax
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(n, out)
	case c == '[':
		return s.array(n, out)
	case c == '"':
		str, err := s.str(n != nil && n.slot >= 0)
		if err != nil {
			return err
		}
		if n != nil && n.slot >= 0 {
			out[n.slot] = Value{Kind: String, Str: str}
		}
		return nil
	case c == 't':
		return s.literal("true", n, out, BoolValue(true))
	case c == 'f':
		return s.literal("false", n, out, BoolValue(false))
	case c == 'n':
		return s.literal("null", n, out, Value{})
	case c == '-' || (c >= '0' && c <= '9'):
		f, err := s.number()
		if err != nil {
			return err
		}
		if n != nil && n.slot >= 0 {
			out[n.slot] = Value{Kind: Number, Num: f}
		}
		return nil
	}
	return ErrSyntax
}

func (s *scanner) literal(lit string, n *node, out []Value, v Value) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return ErrSyntax
	}
	s.pos += len(lit)
	if n != nil && n.slot >= 0 {
		out[n.slot] = v
	}
	return nil
}

func (s *scanner) object(n *node, out []Value) error {
	s.pos++ // {
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return ErrSyntax
		}
		var child *node
		if n != nil && len(n.members) > 0 {
			key, escaped, err := s.rawKey()
			if err != nil {
				return err
			}
			if escaped {
				k, err := unescape(key)
				if err != nil {
					return err
				}
				key = []byte(k)
			}
			for _, m := range n.members {
				if m.key == string(key) { // no allocation: compared in place
					child = m.n
					break
				}
			}
		} else if _, err := s.str(false); err != nil {
			return err
		}
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return ErrSyntax
		}
		s.pos++
		s.space()
		if err := s.value(child, out); err != nil {
			return err
		}
		s.space()
		if s.pos >= len(s.data) {
			return ErrSyntax
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return ErrSyntax
		}
	}
}

func (s *scanner) array(n *node, out []Value) error {
	s.pos++ // [
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		s.space()
		var child *node
		if n != nil {
			for _, c := range n.indexes {
				if c.i == i {
					child = c.n
					break
				}
			}
		}
		if err := s.value(child, out); err != nil {
			return err
		}
		s.space()
		if s.pos >= len(s.data) {
			return ErrSyntax
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return ErrSyntax
		}
	}
}

// rawKey returns a member name's bytes between the quotes, and whether
// it holds escapes.
func (s *scanner) rawKey() ([]byte, bool, error) {
	s.pos++
	start := s.pos
	escaped := false
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			b := s.data[start:s.pos]
			s.pos++
			return b, escaped, nil
		case c == '\\':
			escaped = true
			if s.pos+1 >= len(s.data) {
				return nil, false, ErrSyntax
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if _, n := hex4(s.data[s.pos+2:]); n == 0 {
					return nil, false, ErrSyntax
				}
				s.pos += 6
			default:
				return nil, false, ErrSyntax
			}
		case c < 0x20:
			return nil, false, ErrSyntax
		default:
			s.pos++
		}
	}
	return nil, false, ErrSyntax
}

// str reads a string; with keep it returns its decoded value.
func (s *scanner) str(keep bool) (string, error) {
	raw, escaped, err := s.rawKey()
	if err != nil || !keep {
		return "", err
	}
	if !escaped {
		if !utf8.Valid(raw) {
			return "", ErrSyntax
		}
		return string(raw), nil
	}
	return unescape(raw)
}

func unescape(raw []byte) (string, error) {
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		if i >= len(raw) {
			return "", ErrSyntax
		}
		switch raw[i] {
		case '"', '\\', '/':
			b = append(b, raw[i])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, n := hex4(raw[i+1:])
			if n == 0 {
				return "", ErrSyntax
			}
			i += 4
			if utf16.IsSurrogate(r) {
				hi := r
				r = utf8.RuneError
				if i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if r2, n2 := hex4(raw[i+3:]); n2 > 0 {
						r = utf16.DecodeRune(hi, r2)
						i += 6
					}
				}
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", ErrSyntax
		}
	}
	if !utf8.Valid(b) {
		return "", ErrSyntax
	}
	return string(b), nil
}

func hex4(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, 0
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r*16 + rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r*16 + rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r*16 + rune(c-'A'+10)
		default:
			return 0, 0
		}
	}
	return r, 4
}

// pow10 holds the powers of ten that are exact in a float64.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// number reads a JSON number. The common case (at most 15 significant
// digits, no exponent) is computed exactly from its integer mantissa; the
// rest goes through strconv.
func (s *scanner) number() (float64, error) {
	start := s.pos
	d := s.data
	neg := false
	if d[s.pos] == '-' {
		neg = true
		s.pos++
	}
	var mant uint64
	digits, frac := 0, 0
	intStart := s.pos
	for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
		mant = mant*10 + uint64(d[s.pos]-'0')
		digits++
		s.pos++
	}
	if s.pos == intStart || (d[intStart] == '0' && s.pos-intStart > 1) {
		return 0, ErrSyntax
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		fs := s.pos
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			mant = mant*10 + uint64(d[s.pos]-'0')
			digits++
			frac++
			s.pos++
		}
		if s.pos == fs {
			return 0, ErrSyntax
		}
	}
	slow := false
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		slow = true
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		es := s.pos
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
		if s.pos == es {
			return 0, ErrSyntax
		}
	}
	if !slow && digits <= 15 {
		f := float64(mant) / pow10[frac]
		if neg {
			f = -f
		}
		return f, nil
	}
	f, err := strconv.ParseFloat(string(d[start:s.pos]), 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, ErrSyntax
	}
	return f, nil
}
