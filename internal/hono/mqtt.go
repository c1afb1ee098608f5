package hono

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Upstream is a device's publish on one of Hono's MQTT topics.
type Upstream struct {
	Endpoint Endpoint // Telemetry, Event or CommandResponse
	// Tenant and Device are the topic's segments; empty when left out
	// (an authenticated device, "t//4712" for a gateway's device).
	Tenant, Device string
	// Bag is the property bag (/?k=v&...), nil without one. As in Hono,
	// it starts at the topic's last "/?", '&' and ';' separate its
	// pairs, and its names are matched without regard to case: Bag holds
	// them lower-cased, so Bag.Get("content-type") finds Content-Type.
	Bag url.Values
	// ReqID and Status are a command response's segments; Status is a
	// decimal HTTP status Hono accepts (2xx, 4xx or 5xx).
	ReqID  string
	Status string
}

// ErrTopic is a Hono topic of the wrong shape.
var ErrTopic = errors.New("malformed Hono topic")

// ParseUpstream recognises Hono's upstream topics: telemetry, t, event, e
// with optional /<tenant>/<device>, and command responses
// command/[t]/[d]/res/<req-id>/<status> (short c/[t]/[d]/s/...), each
// with an optional property bag. ok is false for any other topic (plain
// MQTT); err is set for a topic in Hono's namespace that is malformed.
func ParseUpstream(topic string) (u Upstream, ok bool, err error) {
	first, _, _ := strings.Cut(topic, "/")
	switch first {
	case "telemetry", "t":
		u.Endpoint = Telemetry
	case "event", "e":
		u.Endpoint = Event
	case "command", "c":
		u.Endpoint = CommandResponse
	default:
		return u, false, nil
	}
	path, bag, err := cutBag(topic)
	if err != nil {
		return Upstream{}, true, err
	}
	if u.Endpoint == CommandResponse {
		u, err = parseResponse(path)
		u.Bag = bag
		return u, true, err
	}
	u.Bag = bag
	segs := strings.Split(path, "/")
	switch len(segs) {
	case 1:
	case 3:
		u.Tenant, u.Device = segs[1], segs[2]
		if u.Device == "" {
			return u, true, ErrTopic
		}
	case 2:
		// "t/" (a bag-less trailing slash) is the bare form.
		if segs[1] != "" {
			return u, true, ErrTopic
		}
	default:
		return u, true, ErrTopic
	}
	return u, true, nil
}

// cutBag splits topic into the path before its property bag and the
// bag, parsed as Hono's MQTT adapter does (Netty's query decoder behind
// a case-insensitive map): the bag starts at the last "/?", so a value
// may hold an unescaped '/'.
func cutBag(topic string) (string, url.Values, error) {
	i := strings.LastIndex(topic, "/?")
	if i < 0 {
		return topic, nil, nil
	}
	bag := url.Values{}
	for _, pair := range strings.FieldsFunc(topic[i+2:], func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(pair, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return "", nil, ErrTopic
		}
		k = strings.ToLower(k)
		bag[k] = append(bag[k], v)
	}
	return topic[:i], bag, nil
}

// parseResponse parses command/<t>/<d>/res/<req-id>/<status> without its
// property bag. Like Hono, it takes res and s after either command or c.
func parseResponse(path string) (Upstream, error) {
	segs := strings.Split(path, "/")
	if len(segs) != 6 || (segs[3] != "res" && segs[3] != "s") {
		// Other command/... topics are not upstream (subscriptions use
		// req); publishing to them is refused by the adapter.
		return Upstream{Endpoint: CommandResponse}, ErrTopic
	}
	u := Upstream{Endpoint: CommandResponse, Tenant: segs[1], Device: segs[2], ReqID: segs[4], Status: segs[5]}
	if u.ReqID == "" {
		return u, ErrTopic
	}
	// Hono: Integer.parseInt, then 200 <= status < 600 without 3xx.
	status, err := strconv.Atoi(u.Status)
	if err != nil || status < 200 || status >= 600 || (status >= 300 && status < 400) {
		return u, ErrTopic
	}
	u.Status = strconv.Itoa(status)
	return u, nil
}

// CommandFilter is a device's or gateway's subscription for commands.
type CommandFilter struct {
	Short bool // c/.../q/# rather than command/.../req/#
	// Tenant and Device as in the filter: Device is "" for the device
	// itself, "+" for all of a gateway's devices, or one device id.
	Tenant, Device string
}

// ParseCommandFilter recognises command/[t]/[d]/req/# and c/[t]/[d]/q/#.
// ok is false for filters outside command/ and c/; err is set for a
// malformed one there. A wildcard may stand only for the whole device
// segment ("+"), as in Hono.
func ParseCommandFilter(filter string) (f CommandFilter, ok bool, err error) {
	segs := strings.Split(filter, "/")
	switch segs[0] {
	case "command":
	case "c":
		f.Short = true
	default:
		return f, false, nil
	}
	req := "req"
	if f.Short {
		req = "q"
	}
	if len(segs) != 5 || segs[3] != req || segs[4] != "#" {
		return f, true, ErrTopic
	}
	if strings.ContainsAny(segs[1], "+#") || (segs[2] != "+" && strings.ContainsAny(segs[2], "+#")) {
		return f, true, ErrTopic
	}
	f.Tenant, f.Device = segs[1], segs[2]
	return f, true, nil
}

// CommandTopic is the topic a command goes out on to a subscriber of f:
// command/[t]/[d]/req/<req-id>/<name> in f's style, with the tenant and
// device segments filled as the filter had them, and the device segment
// set for a gateway's device (target != "") subscribed with "+". reqID
// is empty for a one-way command.
func (f CommandFilter) CommandTopic(target, reqID, name string) string {
	ep, req := "command", "req"
	if f.Short {
		ep, req = "c", "q"
	}
	dev := f.Device
	if dev == "+" {
		dev = target
	}
	return ep + "/" + f.Tenant + "/" + dev + "/" + req + "/" + reqID + "/" + name
}

// ErrorFilter is a device's subscription to Hono's error topic:
// error/[<tenant>]/[<device>]/# (short e/...; a gateway's error/[t]/+/#).
type ErrorFilter struct {
	Short          bool
	Tenant, Device string
}

// ParseErrorFilter recognises error/[t]/[d]/# and e/[t]/[d]/#. ok is false
// for other filters; err is set for a malformed one under error/.
func ParseErrorFilter(filter string) (f ErrorFilter, ok bool, err error) {
	segs := strings.Split(filter, "/")
	switch segs[0] {
	case "error":
	case "e":
		f.Short = true
	default:
		return f, false, nil
	}
	if len(segs) != 4 || segs[3] != "#" {
		if f.Short {
			return f, false, nil // not the error topic's shape: plain MQTT
		}
		return f, true, ErrTopic
	}
	if strings.ContainsAny(segs[1], "+#") || (segs[2] != "+" && strings.ContainsAny(segs[2], "+#")) {
		return f, true, ErrTopic
	}
	f.Tenant, f.Device = segs[1], segs[2]
	return f, true, nil
}

// ErrorTopic is the topic an error goes out on to a subscriber of f:
// error/[t]/[d]/<endpoint>/<correlation-id>/<status>, the device segment
// filled for a gateway's device when f has "+".
func (f ErrorFilter) ErrorTopic(device, endpoint, correlationID string, status int) string {
	ep := "error"
	if f.Short {
		ep = "e"
	}
	dev := f.Device
	if dev == "+" {
		dev = device
	}
	return ep + "/" + f.Tenant + "/" + dev + "/" + endpoint + "/" + correlationID + "/" + strconv.Itoa(status)
}

// ErrorEndpoint is the <endpoint> segment of an error topic for a publish
// on topic: telemetry, t, event, e, command-response or c-s, in the
// style the device used.
func ErrorEndpoint(topic string) string {
	first, _, _ := strings.Cut(topic, "/")
	switch first {
	case "command":
		return "command-response"
	case "c":
		return "c-s"
	}
	return first
}
