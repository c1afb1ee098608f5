package query

import (
	"strings"
	"testing"
	"time"
)

const example = `SELECT device_id, avg(temp) AS avg, min(temp) AS min, max(temp) AS max,
       count(*) AS n, p95(temp) AS p95
FROM telemetry                      -- or: event | mqtt 'plant/+/temp'
WHERE temp IS NOT NULL
GROUP BY device_id, TUMBLE(1m)      -- HOP(5m,1m) | SESSION(30s) | COUNT(100)
TIME BY ts LATENESS 30s
EMIT ON CLOSE`

func TestParseExample(t *testing.T) {
	q, err := Parse(example)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Select) != 6 || q.Select[0].Agg != "" || q.Select[0].Name != "device_id" {
		t.Fatalf("select = %+v", q.Select)
	}
	if it := q.Select[4]; it.Agg != "count" || it.Arg != nil || it.Name != "n" {
		t.Fatalf("count(*) = %+v", it)
	}
	if q.From.Kind != FromTelemetry || q.Window.Kind != Tumble || q.Window.Size != time.Minute {
		t.Fatalf("from/window = %+v %+v", q.From, q.Window)
	}
	if len(q.Keys) != 1 || q.Keys[0].Kind != FieldDevice {
		t.Fatalf("keys = %+v", q.Keys)
	}
	if q.TimeBy == nil || q.TimeBy.Text != "ts" || q.Lateness != 30*time.Second || q.EmitEvery != 0 {
		t.Fatalf("tail = %+v %v %v", q.TimeBy, q.Lateness, q.EmitEvery)
	}
	if n, ok := q.Where.(*IsNull); !ok || !n.Not {
		t.Fatalf("where = %#v", q.Where)
	}
}

func TestParseForms(t *testing.T) {
	for _, tc := range []struct {
		name, sql string
		check     func(*Query) bool
	}{
		{"hop", "select count(*) from event group by HOP(5m, 1m)", func(q *Query) bool {
			return q.From.Kind == FromEvent && q.Window.Kind == Hop && q.Window.Size == 5*time.Minute && q.Window.Slide == time.Minute
		}},
		{"session", "SELECT sum(a.b[0]) FROM mqtt 'plant/+/temp' GROUP BY topic[1], SESSION(30s)", func(q *Query) bool {
			return q.From.Arg == "plant/+/temp" && q.Keys[0].Kind == FieldTopic && q.Keys[0].Level == 1 &&
				q.Select[0].Arg.Text == "a.b[0]" && q.Window.Kind == Session
		}},
		{"count window", "SELECT first(v), last(v), stddev(v) FROM telemetry GROUP BY device.ext.site, COUNT(100)", func(q *Query) bool {
			return q.Window.Rows == 100 && q.Keys[0].Kind == FieldDeviceExt && q.Keys[0].Name == "site"
		}},
		{"having and emit", "SELECT avg(t) AS a FROM telemetry GROUP BY TUMBLE(10s) HAVING a > 3 AND count(*) >= 2 EMIT EVERY 2s LATE UPDATE", func(q *Query) bool {
			b, ok := q.Having.(*Binary)
			return ok && b.Op == "AND" && q.EmitEvery == 2*time.Second && q.Late == LateUpdate
		}},
		{"where ops", "SELECT count(*) FROM telemetry WHERE NOT (x = 'a' OR y <> 2) AND prop.kind != 'b' AND -z * 2 + 1 < 3 GROUP BY TUMBLE(1.5m)", func(q *Query) bool {
			return q.Window.Size == 90*time.Second
		}},
		{"quoted", `SELECT max("select") AS "from" FROM telemetry GROUP BY TUMBLE(500ms) LATENESS 1d`, func(q *Query) bool {
			return q.Select[0].Name == "from" && q.Select[0].Arg.Text == "select" && q.Lateness == 24*time.Hour
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Parse(tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(q) {
				t.Fatalf("unexpected parse: %+v", q)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		{"", "1:1: expected SELECT, found end of query"},
		{"SELECT avg(t) FORM telemetry", "1:15: expected ',' or FROM, found 'FORM'"},
		{"SELECT avg(t)\nFROM telemetry\nGROUP BY TUMBLE(1x)", "3:17: unknown unit"},
		{"SELECT avg(t) FROM telemetry GROUP BY device_id", "GROUP BY needs a window"},
		{"SELECT avg(t) FROM telemetry GROUP BY TUMBLE(10)", "1:46: expected a duration like 30s, 1m or 500ms, found '10'"},
		{"SELECT x FROM telemetry GROUP BY TUMBLE(1s)", "1:8: x is neither an aggregate nor a GROUP BY key"},
		{"SELECT count(*) FROM telemetry WHERE count(*) > 1 GROUP BY TUMBLE(1s)", "aggregates are not allowed in WHERE"},
		{"SELECT sum(*) FROM telemetry GROUP BY TUMBLE(1s)", "only count(*) takes *"},
		{"SELECT count(*) FROM telemetry GROUP BY TUMBLE(1s), HOP(2s,1s)", "one window"},
		{"SELECT count(*) FROM telemetry GROUP BY HOP(1s, 2s)", "slide must be"},
		{"SELECT count(*) FROM telemetry GROUP BY TUMBLE(1s) EMIT SOON", "expected ON CLOSE or EVERY, found 'SOON'"},
		{"SELECT count(*) FROM telemetry GROUP BY TUMBLE(1s) LATE KEEP", "expected DROP or UPDATE"},
		{"SELECT count(*) FROM telemetry GROUP BY TUMBLE(1s) extra", "expected HAVING, TIME BY, LATENESS, LATE, EMIT or end of query, found 'extra'"},
		{"SELECT count(*) FROM telemetry WHERE a < b < c GROUP BY TUMBLE(1s)", "expected AND, OR or the end of the comparison"},
		{"SELECT count(*) FROM telemetry WHERE a = 'x GROUP BY TUMBLE(1s)", "1:42: expected a value, a field or '(', found illegal unterminated string"},
		{"SELECT count(*) AS n, sum(x) AS n FROM telemetry GROUP BY TUMBLE(1s)", "appears twice"},
		{"SELECT count(*) AS dropped FROM telemetry GROUP BY TUMBLE(1s)", "reserved"},
		{"SELECT count(*) FROM mqtt GROUP BY TUMBLE(1s)", "expected a quoted topic"},
		{"SELECT count(*) FROM mqtt 'a/#/b' GROUP BY TUMBLE(1s)", "1:27: FROM mqtt \"a/#/b\": topic: invalid topic filter: '#' must be the last level"},
		{"SELECT count(*) FROM mqtt '$share/g/a/+' GROUP BY TUMBLE(1s)", "1:27: FROM mqtt takes a plain topic filter"},
		{"SELECT count(*) FROM telemetry GROUP BY COUNT(0)", "COUNT needs a whole number"},
		{"SELECT count(*) FROM telemetry GROUP BY TUMBLE(1s) LATENESS 1s LATENESS 2s", "LATENESS given twice"},
		{"SELECT count(*) FROM telemetry GROUP BY TUMBLE(1s) € ", "illegal character"},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			_, err := Parse(tc.sql)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want %q", err, tc.want)
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error", err)
			}
		})
	}
}

func TestParseSpec(t *testing.T) {
	doc := `name: temp-1m
sql: |
  SELECT device_id, avg(temp) AS avg FROM telemetry GROUP BY device_id, TUMBLE(1m)
outputs:
  - mqtt: analytics/temp-1m/{device_id}
  - mqtt: {topic: "last/{device_id}", retain: true}
  - amqp: analytics/DEFAULT_TENANT/temp-1m
  - prometheus: {name: ferry_temp, max_series: 20}
`
	s, err := ParseSpec([]byte(doc), "DEFAULT_TENANT")
	if err != nil {
		t.Fatal(err)
	}
	if s.Tenant != "DEFAULT_TENANT" || len(s.Outputs) != 4 || s.Outputs[0].MQTT.Topic != "analytics/temp-1m/{device_id}" ||
		!s.Outputs[1].MQTT.Retain || s.Outputs[3].Prometheus.Labels[0] != "device_id" || s.MaxKeys != DefaultMaxKeys {
		t.Fatalf("spec = %+v", s)
	}
	for _, tc := range []struct{ doc, want string }{
		{"name: a\nsql: SELECT count(*) FROM telemetry GROUP BY TUMBLE(1s)\noutputs: [{mqtt: 'x/{nope}'}]", "{nope} is not a column"},
		{"name: a\nsql: SELECT count(*) FROM telemetry GROUP BY TUMBLE(1s)\noutputs: [{amqp: 'telemetry/x'}]", "the address is analytics/DEFAULT_TENANT/<name>"},
		{"name: a\nsql: SELECT count(*) FRM telemetry\n", "sql 1:17: expected ',' or FROM"},
		{"name: 'a b'\nsql: x\n", "name"},
		{"name: a\nsql: SELECT count(*) FROM telemetry GROUP BY TUMBLE(1s)\nbogus: 1\n", "field bogus not found"},
	} {
		if _, err := ParseSpec([]byte(tc.doc), "DEFAULT_TENANT"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSpec(%q) = %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func TestWindowString(t *testing.T) {
	for sql, want := range map[string]string{
		"TUMBLE(10s)": "TUMBLE(10s)", "HOP(5m, 1m)": "HOP(5m, 1m)", "SESSION(90m)": "SESSION(1h30m)",
		"TUMBLE(2h)": "TUMBLE(2h)", "COUNT(7)": "COUNT(7)", "TUMBLE(500ms)": "TUMBLE(500ms)",
	} {
		q, err := Parse("SELECT count(*) FROM telemetry GROUP BY " + sql)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Window.String(); got != want {
			t.Errorf("%s = %s, want %s", sql, got, want)
		}
	}
}
