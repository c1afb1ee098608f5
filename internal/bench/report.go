package bench

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Metric is one figure of one run, printed by `ferry bench --output kv` as
// a line of key=value pairs and read back by Report.
type Metric struct {
	Scenario string // e.g. fanin-qos0
	Name     string // e.g. rate, p99
	Unit     string
	Value    float64
	Loss     float64 // fraction of messages (or connections) lost
	// LowerIsBetter is set for latencies and memory.
	LowerIsBetter bool
}

func (m Metric) String() string {
	better := "higher"
	if m.LowerIsBetter {
		better = "lower"
	}
	return fmt.Sprintf("scenario=%s metric=%s value=%s unit=%s loss=%s better=%s",
		m.Scenario, m.Name, strconv.FormatFloat(m.Value, 'f', -1, 64), m.Unit,
		strconv.FormatFloat(m.Loss, 'f', -1, 64), better)
}

// Metrics returns the rate of a throughput run.
func (r Result) Metrics(scenario, unit string) []Metric {
	return []Metric{{Scenario: scenario, Name: "rate", Unit: unit, Value: r.Rate(), Loss: r.Loss()}}
}

// Metrics returns the median and 99th percentile latency in milliseconds.
func (r LatencyResult) Metrics(scenario string) []Metric {
	ms := func(d float64) float64 { return d / 1e6 }
	return []Metric{
		{Scenario: scenario, Name: "p50", Unit: "ms", Value: ms(float64(r.P50)), Loss: r.Loss(), LowerIsBetter: true},
		{Scenario: scenario, Name: "p99", Unit: "ms", Value: ms(float64(r.P99)), Loss: r.Loss(), LowerIsBetter: true},
	}
}

// Metrics returns the broker's memory per idle connection in KB (when
// measured) and the rate at which the connections were opened.
func (r IdleResult) Metrics(scenario string) []Metric {
	var ms []Metric
	if r.RSSAfter != 0 {
		ms = append(ms, Metric{Scenario: scenario, Name: "rss-per-conn", Unit: "KB", Value: r.PerConn() / 1024, Loss: r.Loss(), LowerIsBetter: true})
	}
	if r.Open > 0 {
		ms = append(ms, Metric{Scenario: scenario, Name: "connects", Unit: "conns/s", Value: float64(r.Opened) / r.Open.Seconds(), Loss: r.Loss()})
	}
	return ms
}

// ParseMetric reads a line written by Metric.String, optionally prefixed
// with broker=NAME.
func ParseMetric(line string) (broker string, m Metric, err error) {
	seen := map[string]bool{}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return "", m, fmt.Errorf("%q is not key=value", f)
		}
		seen[k] = true
		switch k {
		case "broker":
			broker = v
		case "scenario":
			m.Scenario = v
		case "metric":
			m.Name = v
		case "unit":
			m.Unit = v
		case "better":
			m.LowerIsBetter = v == "lower"
		case "value", "loss":
			x, perr := strconv.ParseFloat(v, 64)
			if perr != nil {
				return "", m, fmt.Errorf("%s: %w", k, perr)
			}
			if k == "value" {
				m.Value = x
			} else {
				m.Loss = x
			}
		}
	}
	for _, k := range []string{"scenario", "metric", "value", "loss"} {
		if !seen[k] {
			return "", m, fmt.Errorf("no %s= in %q", k, line)
		}
	}
	return broker, m, nil
}

// Cell is what Report shows for one broker in one row.
type Cell struct {
	Runs, Lossless int
	Median         float64 // of the lossless runs
	MaxLoss        float64
}

func (c Cell) String(unit string) string {
	switch {
	case c.Runs == 0:
		return "-"
	case c.Lossless == 0:
		return fmt.Sprintf("no lossless run (loss up to %.2f%%)", 100*c.MaxLoss)
	}
	s := formatValue(c.Median, unit)
	if c.Lossless < c.Runs {
		s += fmt.Sprintf(" (%d/%d lossless, loss up to %.2f%%)", c.Lossless, c.Runs, 100*c.MaxLoss)
	}
	return s
}

func formatValue(v float64, unit string) string {
	switch {
	case unit == "ms":
		return strconv.FormatFloat(v, 'f', 3, 64)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// Row is one scenario and metric across brokers.
type Row struct {
	Scenario, Metric, Unit string
	LowerIsBetter          bool
	Cells                  map[string]Cell
}

// Table gathers metric lines (broker=NAME first) into rows, in the order
// scenarios and brokers first appear. Lines that are not metrics are
// skipped.
func Table(r io.Reader) (rows []Row, brokers []string, err error) {
	type key struct{ scenario, metric string }
	values := map[key]map[string][]Metric{}
	var order []key
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "broker=") {
			continue
		}
		broker, m, err := ParseMetric(line)
		if err != nil {
			return nil, nil, err
		}
		k := key{m.Scenario, m.Name}
		if values[k] == nil {
			values[k] = map[string][]Metric{}
			order = append(order, k)
		}
		values[k][broker] = append(values[k][broker], m)
		if !slices.Contains(brokers, broker) {
			brokers = append(brokers, broker)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	for _, k := range order {
		row := Row{Scenario: k.scenario, Metric: k.metric, Cells: map[string]Cell{}}
		for broker, ms := range values[k] {
			row.Unit, row.LowerIsBetter = ms[0].Unit, ms[0].LowerIsBetter
			var c Cell
			var ok []float64
			for _, m := range ms {
				c.Runs++
				c.MaxLoss = max(c.MaxLoss, m.Loss)
				if m.Loss == 0 {
					ok = append(ok, m.Value)
				}
			}
			c.Lossless = len(ok)
			c.Median = median(ok)
			row.Cells[broker] = c
		}
		rows = append(rows, row)
	}
	return rows, brokers, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Ratio is base's median over other's, ok only when both have lossless
// runs.
func (r Row) Ratio(base, other string) (float64, bool) {
	b, o := r.Cells[base], r.Cells[other]
	if b.Lossless == 0 || o.Lossless == 0 || o.Median == 0 {
		return 0, false
	}
	return b.Median / o.Median, true
}

// Report prints the medians of the metric lines in r as a Markdown table
// with the ratios of base (e.g. ferry) to every other broker.
func Report(w io.Writer, r io.Reader, base string) error {
	rows, brokers, err := Table(r)
	if err != nil {
		return err
	}
	others := slices.DeleteFunc(slices.Clone(brokers), func(b string) bool { return b == base })
	head := []string{"scenario", "metric", "unit", "better"}
	head = append(head, brokers...)
	for _, o := range others {
		head = append(head, base+"/"+o)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(cells []string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	line(head)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, row := range rows {
		better := "higher"
		if row.LowerIsBetter {
			better = "lower"
		}
		cells := []string{row.Scenario, row.Metric, row.Unit, better}
		for _, b := range brokers {
			cells = append(cells, row.Cells[b].String(row.Unit))
		}
		for _, o := range others {
			if x, ok := row.Ratio(base, o); ok {
				cells = append(cells, strconv.FormatFloat(x, 'f', 2, 64))
			} else {
				cells = append(cells, "n/a")
			}
		}
		line(cells)
	}
	return tw.Flush()
}
