package coapadapter

import (
	"strings"

	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
)

// route is what a request's URI asks for.
type route struct {
	// response: a command response (/cr, /command_response); else
	// telemetry or an event (ep).
	response bool
	ep       hono.Endpoint
	// long: the URI spells the endpoint out (/telemetry, /event,
	// /command_response); the command locations use the same spelling.
	long bool
	// bare: the form of an authenticated device, naming neither tenant
	// nor device (POST). Otherwise device is set and tenant may be empty
	// (a gateway's /t//<device>) (PUT).
	bare           bool
	tenant, device string
	reqID          string
}

// parseRoute reads a request path: /t, /t/<tenant>/<device>,
// /t//<device> (and /telemetry, /e, /event), /cr/<req-id>,
// /cr/<tenant>/<device>/<req-id>, /cr//<device>/<req-id> (and
// /command_response).
func parseRoute(path string) (route, *downstream.Error) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var rt route
	switch segs[0] {
	case "t", "telemetry":
		rt.ep = hono.Telemetry
	case "e", "event":
		rt.ep = hono.Event
	case "cr", "command_response":
		rt.response = true
	default:
		return route{}, downstream.Errorf(404, "use /t, /e or /cr, or their spelled-out forms /telemetry, /event, /command_response")
	}
	rt.long = len(segs[0]) > 2
	if rt.response {
		switch {
		case len(segs) == 2 && segs[1] != "":
			rt.bare, rt.reqID = true, segs[1]
		case len(segs) == 4 && segs[2] != "" && segs[3] != "":
			rt.tenant, rt.device, rt.reqID = segs[1], segs[2], segs[3]
		default:
			return route{}, downstream.Errorf(404, "use /%s/<req-id> or /%[1]s/[<tenant>]/<device>/<req-id>", segs[0])
		}
		return rt, nil
	}
	switch {
	case len(segs) == 1:
		rt.bare = true
	case len(segs) == 3 && segs[2] != "":
		rt.tenant, rt.device = segs[1], segs[2]
	default:
		return route{}, downstream.Errorf(404, "use /%s or /%[1]s/[<tenant>]/<device>", segs[0])
	}
	return rt, nil
}

// commandLocation is the Location-Path of a command in the response to a
// waiting request, one element per option: where the device sends the
// response (cr/...) or, for a one-way command, c/... . loginDevice is the
// authenticated device, "" for an unauthenticated one; a command for
// another device went to a gateway and names that device.
func commandLocation(cmd *command.Command, reqID string, long bool, loginDevice string) []string {
	c, cr := "c", "cr"
	if long {
		c, cr = "command", "command_response"
	}
	switch {
	case loginDevice == "":
		if cmd.OneWay() {
			return []string{c}
		}
		return []string{cr, cmd.Tenant, cmd.Device, reqID}
	case cmd.Device != loginDevice:
		if cmd.OneWay() {
			return []string{c, "", cmd.Device}
		}
		return []string{cr, "", cmd.Device, reqID}
	case cmd.OneWay():
		return []string{c}
	default:
		return []string{cr, reqID}
	}
}
