package amqpapi

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

// AnalyticsPrefix starts the addresses of analytics outputs:
// analytics/<tenant>/<name> sends the rows of the queries whose outputs
// name it (docs/analytics.md).
const AnalyticsPrefix = "analytics/"

// analyticsTopic is where internal/analytics publishes the rows of
// analytics/<tenant>/<name> in the tenant (its HubTopicPrefix; this
// package does not import the analytics engine).
func analyticsTopic(name string) string { return hono.HubPrefix + "analytics/" + name }

// analyticsLinks numbers the hub sessions of analytics links.
var analyticsLinks atomic.Uint64

// handleAnalytics attaches a receiver to an analytics output: a clean hub
// session of the tenant, subscribed to the output's topic, for as long as
// the link lasts. Rows are sent at most once, like telemetry: one that
// finds the link without credit is not kept.
func (s *Server) handleAnalytics(req *amqp.LinkRequest, app *Application) error {
	tenant, name, ok := strings.Cut(strings.TrimPrefix(req.Address, AnalyticsPrefix), "/")
	if !ok || tenant == "" || name == "" || strings.ContainsAny(name, "/+#") {
		return &amqp.Error{Condition: amqp.CondNotFound, Description: fmt.Sprintf("no such address %q: use analytics/<tenant>/<name>", req.Address)}
	}
	if !app.Allows(tenant) {
		return &amqp.Error{Condition: amqp.CondUnauthorizedAccess, Description: fmt.Sprintf("application %s may not use tenant %s", app.Name, tenant)}
	}
	if req.Sender == nil {
		return &amqp.Error{Condition: amqp.CondNotFound, Description: fmt.Sprintf("address %q only sends", req.Address)}
	}
	sess, _ := s.opts.Hub.Open(tenant, fmt.Sprintf("%sanalytics-link/%d", hono.HubPrefix, analyticsLinks.Add(1)), true)
	sess.Attach(analyticsSink{req.Sender})
	if _, err := sess.Subscribe(hub.Subscription{Filter: analyticsTopic(name), RetainHandling: 2}); err != nil {
		sess.Detach(hub.Departure{})
		return &amqp.Error{Condition: amqp.CondInternalError, Description: err.Error()}
	}
	req.Sender.OnDetach(func() { sess.Detach(hub.Departure{}) })
	return nil
}

type analyticsSink struct{ snd *amqp.Sender }

// Deliver sends a row; without credit it is dropped (the hub counts
// nothing: the sink took it).
func (k analyticsSink) Deliver(d hub.Delivery) bool {
	if payload, err := encoded(d.Message); err == nil {
		_, _ = k.snd.TrySendEncoded(payload, nil, nil)
	}
	return true
}
