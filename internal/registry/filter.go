package registry

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Paging limits of Hono's search operations.
const (
	DefaultPageSize = 30
	MaxPageSize     = 200
)

// Query selects and orders search results, as the query parameters of
// Hono's search operations: pageSize, pageOffset, filterJson (repeatable,
// all must match) and sortJson (repeatable, in order of precedence).
type Query struct {
	PageSize   int // 1..MaxPageSize; 0 means DefaultPageSize
	PageOffset int
	Filters    []Filter
	Sort       []Sort
}

// Filter is one filterJson: the value at the JSON pointer Field must equal
// Value. String values may use the wildcards * (any run of characters) and
// ? (one character).
type Filter struct {
	Field string `json:"field"`
	Op    string `json:"op,omitempty"`
	Value any    `json:"value"`

	path []string
}

// Sort is one sortJson: order by the value at the JSON pointer Field,
// ascending ("asc", the default) or descending ("desc").
type Sort struct {
	Field     string `json:"field"`
	Direction string `json:"direction,omitempty"`

	path []string
}

// SearchResult is one page of a search: Total counts every match.
type SearchResult[T any] struct {
	Total  int `json:"total"`
	Result []T `json:"result"`
}

// ParseFilter parses a filterJson query parameter.
func ParseFilter(s string) (Filter, error) {
	var f Filter
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	d.UseNumber()
	if err := d.Decode(&f); err != nil {
		return f, invalidf("filterJson %q: %v", s, err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return f, invalidf("filterJson %q: unexpected data after the object", s)
	}
	if f.Op == "" {
		f.Op = "eq"
	}
	if f.Op != "eq" {
		return f, invalidf("filterJson %q: op must be eq", s)
	}
	path, err := parsePointer(f.Field)
	if err != nil {
		return f, invalidf("filterJson %q: field: %v", s, err)
	}
	f.path = path
	switch v := f.Value.(type) {
	case string, bool, nil:
	case json.Number:
		x, err := v.Float64()
		if err != nil {
			return f, invalidf("filterJson %q: value: %v", s, err)
		}
		f.Value = x
	default:
		return f, invalidf("filterJson %q: value must be a string, number, boolean or null", s)
	}
	return f, nil
}

// ParseSort parses a sortJson query parameter.
func ParseSort(s string) (Sort, error) {
	var o Sort
	if err := decodeStrict([]byte(s), &o); err != nil {
		return o, invalidf("sortJson %q: %v", s, err)
	}
	switch o.Direction {
	case "":
		o.Direction = "asc"
	case "asc", "desc":
	default:
		return o, invalidf("sortJson %q: direction must be asc or desc", s)
	}
	path, err := parsePointer(o.Field)
	if err != nil {
		return o, invalidf("sortJson %q: field: %v", s, err)
	}
	o.path = path
	return o, nil
}

// parsePointer splits an RFC 6901 JSON pointer into unescaped tokens.
func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("empty JSON pointer")
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("JSON pointer %q must start with /", p)
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, fmt.Errorf("JSON pointer %q: ~ must be followed by 0 or 1", p)
			}
		}
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

// lookup resolves a parsed pointer in a decoded JSON document.
func lookup(doc any, path []string) (any, bool) {
	for _, tok := range path {
		switch v := doc.(type) {
		case map[string]any:
			x, ok := v[tok]
			if !ok {
				return nil, false
			}
			doc = x
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) || (len(tok) > 1 && tok[0] == '0') {
				return nil, false
			}
			doc = v[i]
		default:
			return nil, false
		}
	}
	return doc, true
}

func (f *Filter) matches(doc any) bool {
	v, ok := lookup(doc, f.path)
	if !ok {
		return false
	}
	switch want := f.Value.(type) {
	case string:
		s, ok := v.(string)
		return ok && wildcardMatch(want, s)
	default:
		return v == want
	}
}

// wildcardMatch matches s against pattern, where * matches any run of
// characters and ? exactly one. Iterative with backtracking to the last
// star, so it is linear in practice and never exponential.
func wildcardMatch(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// compareJSON orders decoded JSON values: missing and null first, then
// booleans, numbers, strings, and anything else by its JSON text.
func compareJSON(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case bool:
			return 1
		case float64:
			return 2
		case string:
			return 3
		default:
			return 4
		}
	}
	if c := cmp.Compare(rank(a), rank(b)); c != 0 {
		return c
	}
	switch x := a.(type) {
	case bool:
		y := b.(bool)
		if x == y {
			return 0
		} else if !x {
			return -1
		}
		return 1
	case float64:
		return cmp.Compare(x, b.(float64))
	case string:
		return strings.Compare(x, b.(string))
	case nil:
		return 0
	default:
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return bytes.Compare(ja, jb)
	}
}

// searchItem is a record considered by a search: its id, its JSON document
// (with "id" added) for filters and sorting, and the typed value.
type searchItem[T any] struct {
	id  string
	doc any
	val T
}

// newSearchItem prepares v for matching.
func newSearchItem[T any](id string, v T) (searchItem[T], error) {
	b, err := json.Marshal(v)
	if err != nil {
		return searchItem[T]{}, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return searchItem[T]{}, err
	}
	doc["id"] = id
	return searchItem[T]{id: id, doc: doc, val: v}, nil
}

// normalize checks the paging parameters and parses pointers of filters
// and sorts built in code rather than by ParseFilter/ParseSort.
func (q *Query) normalize() error {
	if q.PageSize == 0 {
		q.PageSize = DefaultPageSize
	}
	if q.PageSize < 1 || q.PageSize > MaxPageSize {
		return invalidf("pageSize must be between 1 and %d", MaxPageSize)
	}
	if q.PageOffset < 0 {
		return invalidf("pageOffset must not be negative")
	}
	for i := range q.Filters {
		f := &q.Filters[i]
		if f.path == nil {
			p, err := parsePointer(f.Field)
			if err != nil {
				return invalidf("filter field: %v", err)
			}
			f.path = p
		}
	}
	for i := range q.Sort {
		s := &q.Sort[i]
		if s.path == nil {
			p, err := parsePointer(s.Field)
			if err != nil {
				return invalidf("sort field: %v", err)
			}
			s.path = p
		}
	}
	return nil
}

// apply filters, sorts and pages items; the id breaks ties, so pages are
// stable.
func apply[T any](q Query, items []searchItem[T]) SearchResult[T] {
	matched := items[:0]
	for _, it := range items {
		ok := true
		for i := range q.Filters {
			if !q.Filters[i].matches(it.doc) {
				ok = false
				break
			}
		}
		if ok {
			matched = append(matched, it)
		}
	}
	slices.SortStableFunc(matched, func(a, b searchItem[T]) int {
		for _, s := range q.Sort {
			va, _ := lookup(a.doc, s.path)
			vb, _ := lookup(b.doc, s.path)
			c := compareJSON(va, vb)
			if s.Direction == "desc" {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return strings.Compare(a.id, b.id)
	})
	res := SearchResult[T]{Total: len(matched), Result: []T{}}
	for i := q.PageOffset; i < len(matched) && i-q.PageOffset < q.PageSize; i++ {
		res.Result = append(res.Result, matched[i].val)
	}
	return res
}

// splitID decodes a search result item: the "id" member, and the rest as
// the object's JSON. Without it, the UnmarshalJSON of the embedded Tenant
// or Device would be promoted and reject "id" as an unknown field.
func splitID(data []byte) (string, []byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return "", nil, err
	}
	var id string
	if raw, ok := m["id"]; ok {
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", nil, fmt.Errorf("id: %w", err)
		}
		delete(m, "id")
	}
	rest, err := json.Marshal(m)
	return id, rest, err
}

// UnmarshalJSON decodes a search result item.
func (t *TenantWithID) UnmarshalJSON(data []byte) error {
	id, rest, err := splitID(data)
	if err != nil {
		return err
	}
	t.ID = id
	return t.Tenant.UnmarshalJSON(rest)
}

// UnmarshalJSON decodes a search result item.
func (d *DeviceWithID) UnmarshalJSON(data []byte) error {
	id, rest, err := splitID(data)
	if err != nil {
		return err
	}
	d.ID = id
	return d.Device.UnmarshalJSON(rest)
}
