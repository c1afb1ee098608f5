package engine

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/analytics/fields"
	"github.com/ferry-iot/ferry/internal/analytics/query"
)

type harness struct {
	t    *testing.T
	op   *Operator
	rows []string
	last []*Row
}

func newHarness(t *testing.T, sql string, mutate ...func(*query.Spec)) *harness {
	t.Helper()
	spec := &query.Spec{Name: "q", Tenant: "T", SQL: sql}
	for _, m := range mutate {
		m(spec)
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t}
	h.op = NewOperator(p, &Limits{MaxKeys: int64(spec.MaxKeys), MaxWindows: int64(spec.MaxWindows)}, &Stats{}, func(r *Row) {
		h.rows = append(h.rows, string(r.AppendJSON(nil)))
		c := *r
		c.Aggs = append([]fields.Value(nil), r.Aggs...)
		h.last = append(h.last, &c)
	})
	return h
}

// send feeds device dev a payload at wall time now (ms).
func (h *harness) send(dev string, now int64, payload string) {
	h.op.Process(&Input{Tenant: "T", Device: dev, Topic: "telemetry/T/" + dev, Payload: []byte(payload), Arrival: now}, now)
}

func (h *harness) take() []*Row {
	r := h.last
	h.last, h.rows = nil, nil
	return r
}

func val(r *Row, name string) any {
	v, ok := r.Value(name)
	if !ok {
		return "missing"
	}
	switch v.Kind {
	case fields.Number:
		return v.Num
	case fields.String:
		return v.Str
	}
	return nil
}

func TestTumbleAggregates(t *testing.T) {
	h := newHarness(t, `SELECT device_id, avg(temp) AS avg, min(temp) AS min, max(temp) AS max, count(*) AS n,
		sum(temp) AS s, first(temp) AS f, last(temp) AS l, stddev(temp) AS sd, p50(temp) AS p50, count(temp) AS nt
		FROM telemetry GROUP BY device_id, TUMBLE(10s) TIME BY ts`)
	base := int64(1_700_000_000_000) // a multiple of 10 s
	for i, v := range []float64{4, 2, 6, 8} {
		h.send("d1", base+int64(i)*1000, fmt.Sprintf(`{"ts":%d,"temp":%g}`, base+int64(i)*1000, v))
	}
	h.send("d1", base+5000, `{"ts":`+fmt.Sprint(base+5000)+`}`) // no temp: counted by count(*) only
	if rows := h.take(); len(rows) != 0 {
		t.Fatalf("rows before the window closed: %v", rows)
	}
	h.send("d1", base+10_000, fmt.Sprintf(`{"ts":%d,"temp":1}`, base+10_000))
	rows := h.take()
	if len(rows) != 1 {
		t.Fatalf("rows = %d", len(rows))
	}
	r := rows[0]
	want := map[string]any{"device_id": "d1", "avg": 5.0, "min": 2.0, "max": 8.0, "n": 5.0, "s": 20.0, "f": 4.0, "l": 8.0,
		"p50": 4.0, "nt": 4.0}
	for k, w := range want {
		got := val(r, k)
		if g, ok := got.(float64); ok && k == "p50" {
			if math.Abs(g-w.(float64)) > 0.04 {
				t.Errorf("%s = %v, want %v", k, got, w)
			}
			continue
		}
		if got != w {
			t.Errorf("%s = %v, want %v", k, got, w)
		}
	}
	if sd := val(r, "sd").(float64); math.Abs(sd-math.Sqrt(20.0/3)) > 1e-9 {
		t.Errorf("stddev = %v", sd)
	}
	if r.Start != base || r.End != base+10_000 || !r.Final || r.Revision != 0 {
		t.Errorf("window = %+v", r)
	}
	js := string(r.AppendJSON(nil))
	for _, s := range []string{`"query":"q"`, `"device_id":"d1"`, `"window_start":"2023-11-14T22:13:20.000Z"`, `"avg":5`, `"late":0`, `"id":"`} {
		if !strings.Contains(js, s) {
			t.Errorf("JSON %s lacks %s", js, s)
		}
	}
}

func TestLatenessPerKey(t *testing.T) {
	h := newHarness(t, `SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, TUMBLE(10s) TIME BY ts LATENESS 5s`)
	base := int64(1_700_000_000_000)
	now := base + 60_000
	ev := func(dev string, at int64) { h.send(dev, now, fmt.Sprintf(`{"ts":%d}`, at)) }
	ev("a", base+1000)
	ev("a", base+12_000) // wm = base+7s: window 0 still open
	ev("a", base+3000)   // out of order, within lateness: counted as late
	ev("b", base+2000)
	ev("a", base+16_000) // wm = base+11s: window 0 closes
	rows := h.take()
	if len(rows) != 1 || rows[0].Key != "a" || val(rows[0], "n") != 2.0 || rows[0].Late != 1 {
		t.Fatalf("rows = %+v", rows)
	}
	ev("a", base+4000) // past lateness: dropped, counted in the next window
	ev("b", base+4000) // b's watermark is its own: accepted
	if got := h.op.Stats.Dropped[reasonIndex(ReasonLate)].Load(); got != 1 {
		t.Fatalf("dropped late = %d", got)
	}
	ev("a", base+26_000)
	rows = h.take()
	if len(rows) != 1 || rows[0].Dropped != 1 || val(rows[0], "n") != 2.0 {
		t.Fatalf("second window of a = %+v", rows)
	}
	if late := h.op.Stats.Late.Load(); late != 1 {
		t.Fatalf("late = %d", late)
	}
}

func TestFutureSkew(t *testing.T) {
	h := newHarness(t, `SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, TUMBLE(10s) TIME BY ts`)
	now := int64(1_700_000_000_000)
	h.send("fast", now, fmt.Sprintf(`{"ts":%d}`, now+86_400_000)) // a day fast
	h.send("ok", now, fmt.Sprintf(`{"ts":%d}`, now))
	if got := h.op.Stats.Dropped[reasonIndex(ReasonFuture)].Load(); got != 1 {
		t.Fatalf("future drops = %d", got)
	}
	h.send("ok", now+1000, fmt.Sprintf(`{"ts":%d}`, now+1000))
	if late := h.op.Stats.Late.Load() + h.op.Stats.Dropped[0].Load(); late != 0 {
		t.Fatalf("a fast device made others late: %d", late)
	}
	c := newHarness(t, `SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, TUMBLE(10s) TIME BY ts`,
		func(s *query.Spec) { s.Future = "clamp" })
	c.send("fast", now, fmt.Sprintf(`{"ts":%d}`, now+86_400_000))
	if e := c.op.Explain(); e.OpenWindows != 1 {
		t.Fatalf("clamped row not kept: %+v", e)
	}
}

func TestIdleClose(t *testing.T) {
	h := newHarness(t, `SELECT device_id, max(v) AS m FROM telemetry GROUP BY device_id, TUMBLE(10s) LATENESS 2s`)
	base := int64(1_700_000_000_000)
	h.send("quiet", base+9000, `{"v":3}`)
	h.op.Tick(base + 12_500) // end + lateness + 1s = base+13s
	if rows := h.take(); len(rows) != 0 {
		t.Fatal("closed early")
	}
	h.op.Tick(base + 13_000)
	rows := h.take()
	if len(rows) != 1 || val(rows[0], "m") != 3.0 {
		t.Fatalf("idle close rows = %+v", rows)
	}
	h.send("quiet", base+13_100, `{"v":1}`) // arrival time: next window
	h.op.Tick(base + 3_700_000_000)
	h.op.Tick(base + 3_800_000_000)
	if e := h.op.Explain(); e.Keys != 0 {
		t.Fatalf("idle key not forgotten: %+v", e)
	}
}

func TestHop(t *testing.T) {
	h := newHarness(t, `SELECT device_id, count(*) AS n, sum(v) AS s FROM telemetry GROUP BY device_id, HOP(10s, 5s) TIME BY ts`)
	base := int64(1_700_000_000_000)
	now := base + 100_000
	for _, at := range []int64{1000, 6000, 11_000} {
		h.send("d", now, fmt.Sprintf(`{"ts":%d,"v":%d}`, base+at, at/1000))
	}
	h.send("d", now, fmt.Sprintf(`{"ts":%d,"v":0}`, base+40_000))
	var got []string
	for _, r := range h.take() {
		got = append(got, fmt.Sprintf("%d-%d:%v/%v", (r.Start-base)/1000, (r.End-base)/1000, val(r, "n"), val(r, "s")))
	}
	want := "-5-5:1/1 0-10:2/7 5-15:2/17 10-20:1/11"
	if strings.Join(got, " ") != want {
		t.Fatalf("hop windows = %v, want %s", got, want)
	}
}

func TestSession(t *testing.T) {
	h := newHarness(t, `SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, SESSION(5s) TIME BY ts LATENESS 10s`)
	base := int64(1_700_000_000_000)
	now := base + 100_000
	for _, at := range []int64{0, 3000, 20_000, 12_000, 16_000, 40_000} {
		h.send("d", now, fmt.Sprintf(`{"ts":%d}`, base+at))
	}
	var got []string
	for _, r := range h.take() {
		got = append(got, fmt.Sprintf("%d-%d:%v", (r.Start-base)/1000, (r.End-base)/1000, val(r, "n")))
	}
	// 12 opens a session of its own; 16 bridges it and 20's.
	if strings.Join(got, " ") != "0-8:2 12-25:3" {
		t.Fatalf("sessions = %v", got)
	}
}

func TestCountWindowAndHaving(t *testing.T) {
	h := newHarness(t, `SELECT device_id, sum(v) AS s FROM telemetry GROUP BY device_id, COUNT(3) HAVING s > 10`)
	for i, v := range []int{1, 2, 3, 4, 5, 6} {
		h.send("d", int64(1000+i), fmt.Sprintf(`{"v":%d}`, v))
	}
	rows := h.take()
	if len(rows) != 1 || val(rows[0], "s") != 15.0 {
		t.Fatalf("rows = %+v", rows)
	}
	if h.op.Stats.Rows.Load() != 1 {
		t.Fatal("rows counted")
	}
}

func TestEmitEveryAndLateUpdate(t *testing.T) {
	h := newHarness(t, `SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, TUMBLE(10s) TIME BY ts EMIT EVERY 1s LATE UPDATE`)
	base := int64(1_700_000_000_000)
	h.send("d", base+1000, fmt.Sprintf(`{"ts":%d}`, base+1000))
	h.op.Tick(base + 2100)
	h.op.Tick(base + 2500) // unchanged: nothing
	h.send("d", base+3000, fmt.Sprintf(`{"ts":%d}`, base+3000))
	h.op.Tick(base + 3200)
	h.send("d", base+10_500, fmt.Sprintf(`{"ts":%d}`, base+10_500)) // closes window 0
	h.send("d", base+10_600, fmt.Sprintf(`{"ts":%d}`, base+2000))   // late: revision
	var got []string
	for _, r := range h.take() {
		if r.Start == base {
			got = append(got, fmt.Sprintf("r%d:%v:%v:late%d", r.Revision, val(r, "n"), r.Final, r.Late))
		}
	}
	if strings.Join(got, " ") != "r0:1:false:late0 r1:2:false:late0 r2:2:true:late0 r3:3:true:late1" {
		t.Fatalf("rows = %v", got)
	}
}

func TestLimits(t *testing.T) {
	var limited []string
	h := newHarness(t, `SELECT device_id, count(*) AS n FROM telemetry GROUP BY device_id, TUMBLE(10s)`,
		func(s *query.Spec) { s.MaxKeys = 2 })
	h.op.limits.OnLimit = func(r string) { limited = append(limited, r) }
	for _, d := range []string{"a", "b", "c", "a"} {
		h.send(d, 1000, `{}`)
	}
	if e := h.op.Explain(); e.Keys != 2 || len(limited) != 1 || h.op.Stats.Dropped[reasonIndex(ReasonMaxKeys)].Load() != 1 {
		t.Fatalf("explain %+v, limited %v", e, limited)
	}
}

func TestWhereAndParseErrors(t *testing.T) {
	h := newHarness(t, `SELECT device_id, count(*) AS n FROM telemetry WHERE temp > 20 AND kind = 'x' GROUP BY device_id, TUMBLE(10s)`)
	h.send("d", 1000, `{"temp":25,"kind":"x"}`)
	h.send("d", 1000, `{"temp":15,"kind":"x"}`)
	h.send("d", 1000, `{"temp":25}`)
	h.send("d", 1000, `not json`)
	h.op.Tick(20_000)
	rows := h.take()
	if len(rows) != 1 || val(rows[0], "n") != 1.0 || rows[0].ParseErrors != 1 || h.op.Stats.Filtered.Load() != 2 {
		t.Fatalf("rows = %+v filtered %d", rows, h.op.Stats.Filtered.Load())
	}
}

func TestSnapshotRestore(t *testing.T) {
	sql := `SELECT device_id, avg(v) AS a, p95(v) AS p, count(*) AS n FROM telemetry GROUP BY device_id, TUMBLE(10s) TIME BY ts`
	h := newHarness(t, sql)
	base := int64(1_700_000_000_000)
	for i := range 20 {
		h.send(fmt.Sprintf("d%d", i%3), base+50_000, fmt.Sprintf(`{"ts":%d,"v":%d}`, base+int64(i)*100, i))
	}
	snap := h.op.Snapshot()
	g := newHarness(t, sql)
	if err := g.op.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if a, b := h.op.Explain(), g.op.Explain(); a.Keys != b.Keys || a.OpenWindows != b.OpenWindows || g.op.limits.Keys() != 3 || g.op.limits.Windows() != 3 {
		t.Fatalf("explain %+v != %+v", a, b)
	}
	for _, x := range []*harness{h, g} {
		x.send("d0", base+50_000, fmt.Sprintf(`{"ts":%d,"v":0}`, base+20_000))
	}
	if a, b := h.rows, g.rows; len(a) != 1 || strings.Join(a, "") != strings.Join(b, "") {
		t.Fatalf("rows differ after restore:\n%v\n%v", a, b)
	}
	for i := range snap {
		if err := g.op.Restore(snap[:i]); err == nil {
			t.Fatalf("truncated snapshot (%d of %d bytes) restored", i, len(snap))
		}
	}
}
