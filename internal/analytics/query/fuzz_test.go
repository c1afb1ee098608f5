package query

import (
	"strings"
	"testing"
)

// FuzzParse checks that no input makes the parser panic or loop, and that
// every error names a position inside the text.
func FuzzParse(f *testing.F) {
	f.Add(example)
	f.Add("SELECT count(*) FROM event GROUP BY HOP(5m, 1m) HAVING count(*) > 2 EMIT EVERY 1s")
	f.Add("SELECT sum(a.b[0]) FROM mqtt 'x/+' WHERE NOT (x = 'a' OR y <> -2.5e3) GROUP BY topic[1], SESSION(30s) LATE UPDATE")
	f.Fuzz(func(t *testing.T, sql string) {
		_, err := Parse(sql)
		if err == nil {
			return
		}
		e, ok := err.(*Error)
		if !ok {
			t.Fatalf("error %T is not *Error", err)
		}
		lines := strings.Count(sql, "\n") + 1
		if e.Pos.Line < 1 || e.Pos.Line > lines || e.Pos.Col < 1 {
			t.Fatalf("position %v outside the %d lines of %q", e.Pos, lines, sql)
		}
	})
}
