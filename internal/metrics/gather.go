package metrics

import "github.com/prometheus/client_golang/prometheus"

// Gatherer returns the registry /metrics serves, for in-process readers
// (the web console's live figures) that must show the same numbers as a
// scrape rather than count anything twice.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }
