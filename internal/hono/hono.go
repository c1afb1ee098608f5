// Package hono holds Eclipse Hono's wire facts that more than one front
// end needs: the MQTT adapter's topics and property bag, the northbound
// AMQP addresses, the stateless command request id, the names of
// properties and well-known content types, and the hub addresses Hono
// traffic is routed on inside Ferry. It has no state and no I/O.
//
// Inside a tenant, telemetry and events of device D travel on hub topics
// $hono/telemetry/D and $hono/event/D. Topics starting with '$' are not
// matched by MQTT wildcards, so plain MQTT subscribers to # do not see
// them, and the MQTT adapter refuses client publishes and subscriptions
// under $hono/: only the adapters put messages there.
package hono

import (
	"strings"
)

// Endpoint is a Hono API endpoint.
type Endpoint int

// Hono's endpoints.
const (
	Telemetry Endpoint = iota + 1
	Event
	Command
	CommandResponse
)

func (e Endpoint) String() string {
	switch e {
	case Telemetry:
		return "telemetry"
	case Event:
		return "event"
	case Command:
		return "command"
	case CommandResponse:
		return "command_response"
	}
	return "unknown"
}

// Property names (AMQP application-properties, Kafka headers).
const (
	PropDeviceID    = "device_id"
	PropTenantID    = "tenant_id"
	PropOrigAdapter = "orig_adapter"
	PropOrigAddress = "orig_address"
	PropQoS         = "qos"
	PropTTD         = "ttd"
	PropStatus      = "status"
	PropGatewayID   = "gateway_id"
	// AnnotationRetain is the message annotation carrying MQTT's retain
	// flag.
	AnnotationRetain = "x-opt-retain"
)

// Adapter type names (orig_adapter, connection events' source).
const (
	AdapterMQTT = "hono-mqtt"
	AdapterHTTP = "hono-http"
	AdapterAMQP = "hono-amqp"
	AdapterCoAP = "hono-coap"
)

// Well-known content types.
const (
	ContentTypeOctetStream       = "application/octet-stream"
	ContentTypeEmptyNotification = "application/vnd.eclipse-hono-empty-notification"
	ContentTypeConnection        = "application/vnd.eclipse-hono-dc-notification+json"
)

// TTD values of empty notifications.
const (
	TTDUntilFurtherNotice = -1 // subscribed for commands
	TTDGone               = 0  // unsubscribed or disconnected
)

// HubPrefix starts the hub topics of Hono traffic.
const HubPrefix = "$hono/"

// HubTopic is the hub topic of device's telemetry or events.
func HubTopic(e Endpoint, device string) string {
	return HubPrefix + e.String() + "/" + device
}

// ParseHubTopic is the endpoint and device of a HubTopic.
func ParseHubTopic(topic string) (Endpoint, string, bool) {
	rest, ok := strings.CutPrefix(topic, HubPrefix)
	if !ok {
		return 0, "", false
	}
	ep, device, ok := strings.Cut(rest, "/")
	if !ok || device == "" {
		return 0, "", false
	}
	switch ep {
	case Telemetry.String():
		return Telemetry, device, true
	case Event.String():
		return Event, device, true
	}
	return 0, "", false
}

// HubFilter matches every device's messages of endpoint e.
func HubFilter(e Endpoint) string { return HubPrefix + e.String() + "/#" }

// Reserved reports whether an MQTT client may not publish or subscribe
// to topic: it is Ferry's internal address of Hono traffic.
func Reserved(topic string) bool { return strings.HasPrefix(topic, HubPrefix) }

// NorthboundAddress reports whether addr is in the namespace of Hono's
// northbound API: its first segment names one of Hono's endpoints, so it
// is Hono's even when ParseNorthbound refuses it as malformed.
func NorthboundAddress(addr string) bool {
	first, _, _ := strings.Cut(addr, "/")
	switch first {
	case "telemetry", "event", "command", "command_response", "control":
		return true
	}
	return false
}

// Northbound is a parsed northbound AMQP address.
type Northbound struct {
	Endpoint Endpoint
	Tenant   string
	// ReplyID is the <reply-id> of a command_response address; Device
	// the <device> of a command/<tenant>/<device> message address.
	ReplyID string
	Device  string
}

// ParseNorthbound parses telemetry/<tenant>, event/<tenant>,
// command/<tenant>[/<device>] and command_response/<tenant>/<reply-id>.
func ParseNorthbound(addr string) (Northbound, bool) {
	ep, rest, ok := strings.Cut(addr, "/")
	if !ok || rest == "" {
		return Northbound{}, false
	}
	switch ep {
	case "telemetry", "event":
		if strings.Contains(rest, "/") {
			return Northbound{}, false
		}
		e := Telemetry
		if ep == "event" {
			e = Event
		}
		return Northbound{Endpoint: e, Tenant: rest}, true
	case "command":
		tenant, device, hasDevice := strings.Cut(rest, "/")
		if tenant == "" || (hasDevice && device == "") || strings.Contains(device, "/") {
			return Northbound{}, false
		}
		return Northbound{Endpoint: Command, Tenant: tenant, Device: device}, true
	case "command_response":
		tenant, reply, ok := strings.Cut(rest, "/")
		if !ok || tenant == "" || reply == "" {
			return Northbound{}, false
		}
		return Northbound{Endpoint: CommandResponse, Tenant: tenant, ReplyID: reply}, true
	}
	return Northbound{}, false
}
