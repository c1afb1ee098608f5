package engine

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/ferry-iot/ferry/internal/analytics/query"
)

// benchOperator feeds 10,000 devices' ~45-byte JSON payloads into a
// 10-second tumbling window query, in process, and reports the state per
// (device, window) in the middle of a window.
func benchOperator(b *testing.B, sql string) {
	spec := &query.Spec{Name: "bench", Tenant: "T", SQL: sql}
	if err := spec.Validate(); err != nil {
		b.Fatal(err)
	}
	p, err := Compile(spec)
	if err != nil {
		b.Fatal(err)
	}
	const devices = 10_000
	rows := 0
	op := NewOperator(p, &Limits{MaxKeys: 1 << 30, MaxWindows: 1 << 30}, &Stats{}, func(*Row) { rows++ })
	ins := make([]Input, devices)
	payloads := make([][]byte, 512)
	for i := range payloads {
		payloads[i] = fmt.Appendf(nil, `{"ts":1700000000%03d,"temp":%d.%d,"hum":%d}`, i%1000, 15+i%20, i%10, 30+i%50)
	}
	for i := range ins {
		ins[i] = Input{Tenant: "T", Device: fmt.Sprintf("dev-%d", i), Topic: "telemetry"}
	}
	// Warm up: every device has a window open. The heap grown by it is
	// the state (the map, keys and windows).
	now := int64(1_700_000_000_000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range ins {
		ins[i].Payload, ins[i].Arrival = payloads[i%len(payloads)], now
		op.Process(&ins[i], now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	e := op.Explain()
	perWindow := float64(after.HeapAlloc-before.HeapAlloc) / float64(e.OpenWindows)
	estimate := float64(e.StateBytes) / float64(e.OpenWindows)
	b.ReportAllocs()
	b.ResetTimer()
	// 100 events per millisecond: a 10 s window holds 100 rows of each device.
	for i := range b.N {
		in := &ins[i%devices]
		in.Payload = payloads[i%len(payloads)]
		t := now + int64(i/100)
		in.Arrival = t
		op.Process(in, t)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(perWindow, "heapB/window")
	b.ReportMetric(estimate, "explainB/window")
	_ = rows
}

func BenchmarkOperatorAvgMinMaxCount(b *testing.B) {
	benchOperator(b, `SELECT device_id, avg(temp) AS avg, min(temp) AS min, max(temp) AS max, count(*) AS n
		FROM telemetry GROUP BY device_id, TUMBLE(10s)`)
}

func BenchmarkOperatorWithP95(b *testing.B) {
	benchOperator(b, `SELECT device_id, avg(temp) AS avg, min(temp) AS min, max(temp) AS max, count(*) AS n, p95(temp) AS p95
		FROM telemetry GROUP BY device_id, TUMBLE(10s)`)
}
