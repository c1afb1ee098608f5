package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/internal/analytics/fields"
)

// ID is the row's deterministic id: a hash of query, tenant, key, window
// start and revision, so that a consumer can drop a row sent twice (after
// a restart, say).
func (r *Row) ID() string {
	h := sha256.New()
	h.Write([]byte(r.Plan.Tenant))
	h.Write([]byte{0})
	h.Write([]byte(r.Plan.Name))
	h.Write([]byte{0})
	h.Write([]byte(r.Key))
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(r.Start))
	binary.BigEndian.PutUint32(b[8:], r.Revision)
	h.Write(b[:])
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:12])
}

// KeyNames are the names of the key columns of rows, in order.
func (p *Plan) KeyNames() []string { return p.keyNames }

// Columns are the names of the aggregate columns of rows, in order.
func (p *Plan) Columns() []string {
	out := make([]string, len(p.cols))
	for i, c := range p.cols {
		out[i] = c.name
	}
	return out
}

// Value returns the row's value of a column (key or aggregate) by name.
func (r *Row) Value(name string) (fields.Value, bool) {
	if name == "query" {
		return fields.StringValue(r.Plan.Name), true
	}
	for i, k := range r.Plan.keyNames {
		if k == name {
			return r.KeyVals[i], true
		}
	}
	for _, c := range r.Plan.cols {
		if c.name == name {
			return r.Aggs[c.agg], true
		}
	}
	return fields.Value{}, false
}

// ColumnValues returns the aggregate columns' values, in Columns order.
func (r *Row) ColumnValues() []fields.Value {
	out := make([]fields.Value, len(r.Plan.cols))
	for i, c := range r.Plan.cols {
		out[i] = r.Aggs[c.agg]
	}
	return out
}

// AppendJSON appends the row as the JSON object of docs/analytics.md:
// {query, keys..., window_start, window_end, revision, final,
// aggregates..., late, dropped, parse_errors, id}.
func (r *Row) AppendJSON(b []byte) []byte {
	p := r.Plan
	b = append(b, `{"query":`...)
	b = appendString(b, p.Name)
	for i, k := range p.keyNames {
		b = append(b, ',')
		b = appendString(b, k)
		b = append(b, ':')
		b = appendValue(b, r.KeyVals[i])
	}
	b = append(b, `,"window_start":`...)
	b = appendString(b, FormatTime(r.Start))
	b = append(b, `,"window_end":`...)
	b = appendString(b, FormatTime(r.End))
	b = append(b, `,"revision":`...)
	b = strconv.AppendUint(b, uint64(r.Revision), 10)
	b = append(b, `,"final":`...)
	b = strconv.AppendBool(b, r.Final)
	for _, c := range p.cols {
		b = append(b, ',')
		b = appendString(b, c.name)
		b = append(b, ':')
		b = appendValue(b, r.Aggs[c.agg])
	}
	b = append(b, `,"late":`...)
	b = strconv.AppendUint(b, uint64(r.Late), 10)
	b = append(b, `,"dropped":`...)
	b = strconv.AppendUint(b, uint64(r.Dropped), 10)
	b = append(b, `,"parse_errors":`...)
	b = strconv.AppendUint(b, uint64(r.ParseErrors), 10)
	b = append(b, `,"id":"`...)
	b = append(b, r.ID()...)
	return append(b, `"}`...)
}

// FormatTime writes Unix ms as RFC 3339 in UTC with milliseconds.
func FormatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func appendValue(b []byte, v fields.Value) []byte {
	switch v.Kind {
	case fields.Number:
		if math.IsNaN(v.Num) || math.IsInf(v.Num, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v.Num, 'g', -1, 64)
	case fields.String:
		return appendString(b, v.Str)
	case fields.Bool:
		return strconv.AppendBool(b, v.Num != 0)
	}
	return append(b, "null"...)
}

// appendValueText appends v as key text (no quotes).
func appendValueText(b []byte, v fields.Value) []byte {
	switch v.Kind {
	case fields.Number:
		return strconv.AppendFloat(b, v.Num, 'g', -1, 64)
	case fields.String:
		return append(b, v.Str...)
	case fields.Bool:
		return strconv.AppendBool(b, v.Num != 0)
	}
	return append(b, "null"...)
}

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
