package console

import (
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// inspectBuffer is how many messages wait for a slow browser before the
// inspector drops (and counts) the next ones.
const inspectBuffer = 256

// inspectSessionPrefix starts the client IDs of the inspectors' hub
// sessions: under hono.HubPrefix, which no MQTT client may use, so that
// no device can take an inspector's session over.
const inspectSessionPrefix = hono.HubPrefix + "console/"

// inspectSink is the hub Sink of one topic inspector: it never blocks the
// hub, and drops what does not fit in its buffer.
type inspectSink struct {
	ch      chan inspected
	dropped atomic.Uint64
}

type inspected struct {
	d  hub.Delivery
	at time.Time
}

// Deliver implements hub.Sink. It always takes the delivery, so that the
// hub neither queues for the inspector nor counts its drops as the
// devices' (the inspector counts its own).
func (s *inspectSink) Deliver(d hub.Delivery) bool {
	select {
	case s.ch <- inspected{d: d, at: time.Now()}:
	default:
		s.dropped.Add(1)
	}
	return true
}

// InspectedMessage is one event of the topic inspector.
type InspectedMessage struct {
	Topic  string    `json:"topic"`
	Retain bool      `json:"retain"`
	Time   time.Time `json:"time"`
	Message
}

// inspect: GET /console/api/inspect?tenant=&filter=, an event stream of
// the messages published in tenant on topics matching filter: a
// "message" event each, the retained ones first (at most maxList, then a
// "retained_more" event), and a "dropped" event with the running count of
// those the browser was too slow for. Shared
// subscriptions are refused: the inspector would take messages from the
// group's members.
func (c *Console) inspect(w http.ResponseWriter, r *http.Request, s *session) {
	tenant, ok := c.oneTenant(w, r, s)
	if !ok {
		return
	}
	filter := r.URL.Query().Get("filter")
	if err := topic.ValidateFilter(filter); err != nil {
		writeError(w, http.StatusBadRequest, "invalid filter: "+err.Error())
		return
	}
	if strings.HasPrefix(filter, "$share/") {
		writeError(w, http.StatusBadRequest, "invalid filter: the inspector does not join shared subscriptions")
		return
	}
	if c.ctx.Err() != nil {
		writeError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	select {
	case c.inspectors <- struct{}{}:
		defer func() { <-c.inspectors }()
	default:
		writeError(w, http.StatusTooManyRequests, "too many topic inspectors open")
		return
	}

	sink := &inspectSink{ch: make(chan inspected, inspectBuffer)}
	sess, _ := c.opts.Hub.Open(tenant, inspectSessionPrefix+randomToken()[:16], true)
	// Expiry 0: the session, its subscription included, ends with the
	// stream.
	defer sess.Detach(hub.Departure{})
	sess.Attach(sink)
	retained, err := sess.Subscribe(hub.Subscription{Filter: filter, QoS: 0})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "subscribing: "+err.Error())
		return
	}
	es, err := startStream(w)
	if err != nil {
		return
	}
	if es.send("subscribed", map[string]string{"tenant": tenant, "filter": filter}) != nil {
		return
	}
	// The retained messages come first, from the subscription's answer
	// rather than through the buffer, which they could fill: at most
	// maxList of them, then the number left out.
	now := time.Now()
	for i, d := range retained {
		if i == maxList {
			if es.send("retained_more", map[string]int{"more": len(retained) - maxList}) != nil {
				return
			}
			break
		}
		ev := InspectedMessage{Topic: d.Message.Topic, Retain: true, Time: now, Message: shown(d.Message)}
		if es.send("message", ev) != nil {
			return
		}
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var said uint64
	idle := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.ctx.Done():
			return
		case m := <-sink.ch:
			ev := InspectedMessage{Topic: m.d.Message.Topic, Retain: m.d.Retain, Time: m.at, Message: shown(m.d.Message)}
			ev.QoS = m.d.Message.QoS
			if es.send("message", ev) != nil {
				return
			}
			idle = 0
		case <-tick.C:
			if n := sink.dropped.Load(); n != said {
				said = n
				if es.send("dropped", map[string]uint64{"dropped": n}) != nil {
					return
				}
				continue
			}
			if idle++; idle >= 15 {
				idle = 0
				if es.comment() != nil {
					return
				}
			}
		}
	}
}
