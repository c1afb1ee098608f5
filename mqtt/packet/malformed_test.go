package packet

import (
	"errors"
	"strings"
	"testing"
)

// pk builds a packet from its first byte and body parts (see cat), with the
// right Remaining Length, so each malformed case breaks exactly one rule.
func pk(first byte, body ...any) []byte {
	b := cat(body...)
	return append(AppendVarInt([]byte{first}, uint32(len(b))), b...)
}

// Frequently used fragments.
var (
	mqtt5   = cat(0x00, 0x04, "MQTT", 0x05) // v5 protocol name and level
	mqtt311 = cat(0x00, 0x04, "MQTT", 0x04) // 3.1.1 protocol name and level
	topicAB = cat(0x00, 0x03, "a/b")
)

// props builds a v5 property list with its length.
func props(parts ...any) []byte {
	b := cat(parts...)
	return append(AppendVarInt(nil, uint32(len(b))), b...)
}

// publishWith is a v5 QoS 0 PUBLISH to a/b carrying the given properties.
func publishWith(p ...any) []byte { return pk(0x30, topicAB, props(p...)) }

// connackWith is a v5 CONNACK carrying the given properties.
func connackWith(p ...any) []byte { return pk(0x20, 0x00, 0x00, props(p...)) }

// connectWith is a v5 CONNECT carrying the given properties.
func connectWith(p ...any) []byte {
	return pk(0x10, mqtt5, 0x02, 0x00, 0x00, props(p...), 0x00, 0x01, "c")
}

func TestMalformed(t *testing.T) {
	long := strings.Repeat("x", 24)
	tests := []struct {
		name string
		v    Version
		raw  []byte
		code ReasonCode
	}{
		// Reserved fixed header flags [MQTT-2.1.3-1].
		{"flags/connect", V5, pk(0x11, mqtt5, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00), MalformedPacket},
		{"flags/connack", V311, pk(0x21, 0x00, 0x00), MalformedPacket},
		{"flags/puback", V311, pk(0x42, 0x00, 0x01), MalformedPacket},
		{"flags/pubrec", V5, pk(0x51, 0x00, 0x01), MalformedPacket},
		{"flags/pubrel 0", V311, pk(0x60, 0x00, 0x01), MalformedPacket},
		{"flags/pubrel 3", V5, pk(0x63, 0x00, 0x01), MalformedPacket},
		{"flags/pubcomp", V5, pk(0x72, 0x00, 0x01), MalformedPacket},
		{"flags/subscribe", V311, pk(0x80, 0x00, 0x01, topicAB, 0x00), MalformedPacket},
		{"flags/suback", V311, pk(0x92, 0x00, 0x01, 0x00), MalformedPacket},
		{"flags/unsubscribe", V311, pk(0xA0, 0x00, 0x01, topicAB), MalformedPacket},
		{"flags/unsuback", V311, pk(0xB1, 0x00, 0x01), MalformedPacket},
		{"flags/pingreq", V311, pk(0xC1), MalformedPacket},
		{"flags/pingresp", V5, pk(0xD8), MalformedPacket},
		{"flags/disconnect", V5, pk(0xE2), MalformedPacket},
		{"flags/auth", V5, pk(0xF1), MalformedPacket},

		// Remaining Length must match the contents: trailing or missing bytes.
		{"trailing/puback v311", V311, pk(0x40, 0x00, 0x01, 0x00), MalformedPacket},
		{"trailing/pingreq", V311, pk(0xC0, 0x00), MalformedPacket},
		{"trailing/disconnect v311", V311, pk(0xE0, 0x00), MalformedPacket},
		{"trailing/connack v311", V311, pk(0x20, 0x00, 0x00, 0x00), MalformedPacket},
		{"trailing/unsuback v311", V311, pk(0xB0, 0x00, 0x01, 0x00), MalformedPacket},
		{"trailing/connect", V311, pk(0x10, mqtt311, 0x02, 0x00, 0x00, 0x00, 0x01, "c", 0x00), MalformedPacket},
		{"trailing/v5 puback after props", V5, pk(0x40, 0x00, 0x01, 0x00, 0x00, 0xFF), MalformedPacket},
		{"truncated/publish topic", V311, pk(0x30, 0x00, 0x05, "a/b"), MalformedPacket},
		{"truncated/publish packet id", V311, pk(0x32, topicAB, 0x00), MalformedPacket},
		{"truncated/puback", V311, pk(0x40, 0x00), MalformedPacket},
		{"truncated/property length", V5, pk(0x30, topicAB, 0x05, 0x01), MalformedPacket},
		{"truncated/property value", V5, pk(0x30, topicAB, 0x02, 0x02, 0x00), MalformedPacket},
		{"truncated/user property", V5, publishWith(0x26, 0x00, 0x01, "k"), MalformedPacket},
		{"truncated/connect client id", V311, pk(0x10, mqtt311, 0x02, 0x00, 0x00), MalformedPacket},
		{"truncated/connect flags", V311, pk(0x10, mqtt311, 0x02), MalformedPacket},
		{"truncated/connect will", V311, pk(0x10, mqtt311, 0x06, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x01, "w"), MalformedPacket},
		{"truncated/connect password", V311, pk(0x10, mqtt311, 0xC2, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x01, "u"), MalformedPacket},
		{"truncated/connack", V311, pk(0x20, 0x00), MalformedPacket},
		{"truncated/v5 connack without property length", V5, pk(0x20, 0x00, 0x00), MalformedPacket},
		{"truncated/subscribe options", V311, pk(0x82, 0x00, 0x01, topicAB), MalformedPacket},
		{"truncated/auth code only", V5, pk(0xF0, 0x18), MalformedPacket},
		{"vbi/property length 5 bytes", V5, pk(0x30, topicAB, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), MalformedPacket},
		{"vbi/subscription identifier 5 bytes", V5, publishWith(0x0B, 0x80, 0x80, 0x80, 0x80, 0x01), MalformedPacket},

		// UTF-8 Encoded Strings [MQTT-1.5.4-1] [MQTT-1.5.4-2].
		{"utf8/topic invalid", V311, pk(0x30, 0x00, 0x02, 0xC3, 0x28), MalformedPacket},
		{"utf8/topic nul", V5, pk(0x30, 0x00, 0x02, "a", 0x00, 0x00), MalformedPacket},
		{"utf8/topic surrogate", V311, pk(0x30, 0x00, 0x03, 0xED, 0xA0, 0x80), MalformedPacket},
		{"utf8/client id", V311, pk(0x10, mqtt311, 0x02, 0x00, 0x00, 0x00, 0x01, 0xFF), MalformedPacket},
		{"utf8/user name", V311, pk(0x10, mqtt311, 0x82, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x01, 0x00), MalformedPacket},
		{"utf8/will topic", V311, pk(0x10, mqtt311, 0x06, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x01, 0xFE, 0x00, 0x00), MalformedPacket},
		{"utf8/protocol name", V311, pk(0x10, 0x00, 0x04, "MQT", 0xFF, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00), MalformedPacket},
		{"utf8/filter", V311, pk(0x82, 0x00, 0x01, 0x00, 0x01, 0x80, 0x00), MalformedPacket},
		{"utf8/unsubscribe filter", V5, pk(0xA2, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00), MalformedPacket},
		{"utf8/user property", V5, publishWith(0x26, 0x00, 0x01, 0x00, 0x00, 0x00), MalformedPacket},
		{"utf8/content type", V5, publishWith(0x03, 0x00, 0x01, 0xC0), MalformedPacket},
		{"utf8/reason string", V5, pk(0x40, 0x00, 0x01, 0x80, props(0x1F, 0x00, 0x01, 0xFF)), MalformedPacket},

		// PUBLISH [MQTT-3.3.1-2] [MQTT-3.3.1-4] [MQTT-3.3.2-2] [MQTT-2.2.1-3].
		{"publish/qos 3", V311, pk(0x36, topicAB, 0x00, 0x01), MalformedPacket},
		{"publish/qos 3 v5", V5, pk(0x37, topicAB, 0x00, 0x01, 0x00), MalformedPacket},
		{"publish/dup on qos 0", V311, pk(0x38, topicAB), MalformedPacket},
		{"publish/plus in topic", V311, pk(0x30, 0x00, 0x03, "a/+"), TopicNameInvalid},
		{"publish/hash in topic", V5, pk(0x30, 0x00, 0x01, "#", 0x00), TopicNameInvalid},
		{"publish/empty topic v311", V311, pk(0x30, 0x00, 0x00, "x"), TopicNameInvalid},
		{"publish/empty topic v5 without alias", V5, pk(0x30, 0x00, 0x00, 0x00, "x"), TopicNameInvalid},
		{"publish/packet id 0", V311, pk(0x32, topicAB, 0x00, 0x00), ProtocolError},
		{"publish/packet id 0 qos 2", V5, pk(0x34, topicAB, 0x00, 0x00, 0x00), ProtocolError},
		{"publish/topic alias 0", V5, publishWith(0x23, 0x00, 0x00), TopicAliasInvalid},

		// Packet identifier 0 where one is required [MQTT-2.2.1-3].
		{"packet id 0/puback", V311, pk(0x40, 0x00, 0x00), ProtocolError},
		{"packet id 0/pubrec", V5, pk(0x50, 0x00, 0x00), ProtocolError},
		{"packet id 0/pubrel", V311, pk(0x62, 0x00, 0x00), ProtocolError},
		{"packet id 0/pubcomp", V5, pk(0x70, 0x00, 0x00), ProtocolError},
		{"packet id 0/subscribe", V311, pk(0x82, 0x00, 0x00, topicAB, 0x00), ProtocolError},
		{"packet id 0/suback", V311, pk(0x90, 0x00, 0x00, 0x00), ProtocolError},
		{"packet id 0/unsubscribe", V5, pk(0xA2, 0x00, 0x00, 0x00, topicAB), ProtocolError},
		{"packet id 0/unsuback", V311, pk(0xB0, 0x00, 0x00), ProtocolError},

		// SUBSCRIBE and UNSUBSCRIBE [MQTT-3.8.3-2] [MQTT-3.8.3-4] [MQTT-3.8.3-5] [MQTT-3.10.3-2].
		{"subscribe/no entries", V311, pk(0x82, 0x00, 0x01), ProtocolError},
		{"subscribe/no entries v5", V5, pk(0x82, 0x00, 0x01, 0x00), ProtocolError},
		{"subscribe/qos 3", V311, pk(0x82, 0x00, 0x01, topicAB, 0x03), MalformedPacket},
		{"subscribe/qos 3 v5", V5, pk(0x82, 0x00, 0x01, 0x00, topicAB, 0x03), MalformedPacket},
		{"subscribe/reserved bits v311", V311, pk(0x82, 0x00, 0x01, topicAB, 0x04), MalformedPacket},
		{"subscribe/reserved bits v5", V5, pk(0x82, 0x00, 0x01, 0x00, topicAB, 0x40), MalformedPacket},
		{"subscribe/reserved bit 7 v5", V5, pk(0x82, 0x00, 0x01, 0x00, topicAB, 0x80), MalformedPacket},
		{"subscribe/retain handling 3", V5, pk(0x82, 0x00, 0x01, 0x00, topicAB, 0x30), MalformedPacket},
		{"subscribe/hash not last", V311, pk(0x82, 0x00, 0x01, 0x00, 0x05, "a/#/b", 0x00), TopicFilterInvalid},
		{"subscribe/plus glued", V5, pk(0x82, 0x00, 0x01, 0x00, 0x00, 0x02, "a+", 0x00), TopicFilterInvalid},
		{"subscribe/empty filter", V311, pk(0x82, 0x00, 0x01, 0x00, 0x00, 0x00), TopicFilterInvalid},
		{"subscribe/second filter bad", V311, pk(0x82, 0x00, 0x01, topicAB, 0x00, 0x00, 0x02, "#/", 0x00), TopicFilterInvalid},
		{"subscribe/empty share name", V5, pk(0x82, 0x00, 0x01, 0x00, 0x00, 0x09, "$share//a", 0x00), TopicFilterInvalid},
		{"subscribe/share without filter", V5, pk(0x82, 0x00, 0x01, 0x00, 0x00, 0x08, "$share/g", 0x00), TopicFilterInvalid},
		{"subscribe/shared no local", V5, pk(0x82, 0x00, 0x01, 0x00, 0x00, 0x0A, "$share/g/a", 0x04), ProtocolError},
		{"subscribe/two subscription identifiers", V5, pk(0x82, 0x00, 0x01, props(0x0B, 0x01, 0x0B, 0x02), topicAB, 0x00), ProtocolError},
		{"subscribe/subscription identifier 0", V5, pk(0x82, 0x00, 0x01, props(0x0B, 0x00), topicAB, 0x00), ProtocolError},
		{"unsubscribe/no entries", V311, pk(0xA2, 0x00, 0x01), ProtocolError},
		{"unsubscribe/no entries v5", V5, pk(0xA2, 0x00, 0x01, 0x00), ProtocolError},
		{"unsubscribe/bad filter", V311, pk(0xA2, 0x00, 0x01, 0x00, 0x03, "a/#", 0x00, 0x02, "#x"), TopicFilterInvalid},
		{"unsubscribe/bad share", V5, pk(0xA2, 0x00, 0x01, 0x00, 0x00, 0x0A, "$share/+/a"), TopicFilterInvalid},
		{"unsubscribe/property not allowed", V5, pk(0xA2, 0x00, 0x01, props(0x1F, 0x00, 0x00), topicAB), ProtocolError},

		// Properties (MQTT 5 section 2.2.2).
		{"props/unknown identifier", V5, publishWith(0x04, 0x00), ProtocolError},
		{"props/unknown large identifier", V5, publishWith(0x80, 0x01, 0x00), ProtocolError},
		{"props/not allowed in publish", V5, publishWith(0x11, 0x00, 0x00, 0x00, 0x00), ProtocolError},
		{"props/not allowed in puback", V5, pk(0x40, 0x00, 0x01, 0x00, props(0x03, 0x00, 0x01, "x")), ProtocolError},
		{"props/not allowed in connect", V5, connectWith(0x24, 0x01), ProtocolError},
		{"props/not allowed in will", V5, pk(0x10, mqtt5, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, "c", props(0x11, 0x00, 0x00, 0x00, 0x01), 0x00, 0x01, "w", 0x00, 0x00), ProtocolError},
		{"props/not allowed in disconnect", V5, pk(0xE0, 0x00, props(0x23, 0x00, 0x01)), ProtocolError},
		{"props/not allowed in auth", V5, pk(0xF0, 0x18, props(0x15, 0x00, 0x01, "m", 0x11, 0x00, 0x00, 0x00, 0x00)), ProtocolError},
		{"props/duplicate content type", V5, publishWith(0x03, 0x00, 0x01, "a", 0x03, 0x00, 0x01, "b"), ProtocolError},
		{"props/duplicate topic alias", V5, publishWith(0x23, 0x00, 0x01, 0x23, 0x00, 0x01), ProtocolError},
		{"props/duplicate session expiry", V5, connectWith(0x11, 0x00, 0x00, 0x00, 0x01, 0x11, 0x00, 0x00, 0x00, 0x01), ProtocolError},
		{"props/duplicate reason string", V5, pk(0x40, 0x00, 0x01, 0x00, props(0x1F, 0x00, 0x00, 0x1F, 0x00, 0x00)), ProtocolError},
		{"props/subscription identifier 0", V5, publishWith(0x0B, 0x00), ProtocolError},
		{"props/receive maximum 0", V5, connectWith(0x21, 0x00, 0x00), ProtocolError},
		{"props/receive maximum 0 connack", V5, connackWith(0x21, 0x00, 0x00), ProtocolError},
		{"props/maximum packet size 0", V5, connectWith(0x27, 0x00, 0x00, 0x00, 0x00), ProtocolError},
		{"props/payload format 2", V5, publishWith(0x01, 0x02), ProtocolError},
		{"props/request problem info 2", V5, connectWith(0x17, 0x02), ProtocolError},
		{"props/request response info 2", V5, connectWith(0x19, 0x02), ProtocolError},
		{"props/maximum qos 2", V5, connackWith(0x24, 0x02), ProtocolError},
		{"props/retain available 2", V5, connackWith(0x25, 0x02), ProtocolError},
		{"props/wildcard available 2", V5, connackWith(0x28, 0x02), ProtocolError},
		{"props/subscription ids available 2", V5, connackWith(0x29, 0xFF), ProtocolError},
		{"props/shared available 2", V5, connackWith(0x2A, 0x02), ProtocolError},
		{"props/auth data without method", V5, connectWith(0x16, 0x00, 0x01, 0x01), ProtocolError},
		{"props/response topic wildcard", V5, publishWith(0x08, 0x00, 0x03, "a/#"), ProtocolError},

		// CONNECT [MQTT-3.1.2-1] [MQTT-3.1.2-2] [MQTT-3.1.2-3] [MQTT-3.1.2-11..13] [MQTT-3.1.2-22].
		{"connect/protocol level 6", V5, pk(0x10, 0x00, 0x04, "MQTT", 0x06, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00), UnsupportedProtocolVersion},
		{"connect/protocol name", V5, pk(0x10, 0x00, 0x04, "MQTX", 0x04, 0x02, 0x00, 0x00, 0x00, 0x00), UnsupportedProtocolVersion},
		{"connect/reserved flag", V311, pk(0x10, mqtt311, 0x03, 0x00, 0x00, 0x00, 0x01, "c"), MalformedPacket},
		{"connect/will qos without will", V311, pk(0x10, mqtt311, 0x0A, 0x00, 0x00, 0x00, 0x01, "c"), MalformedPacket},
		{"connect/will retain without will", V5, pk(0x10, mqtt5, 0x22, 0x00, 0x00, 0x00, 0x00, 0x01, "c"), MalformedPacket},
		{"connect/will qos 3", V311, pk(0x10, mqtt311, 0x1E, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x01, "w", 0x00, 0x00), MalformedPacket},
		{"connect/password without user name v311", V311, pk(0x10, mqtt311, 0x42, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x01, "p"), MalformedPacket},
		{"connect/password without user name v31", V31, pk(0x10, 0x00, 0x06, "MQIsdp", 0x03, 0x42, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x01, "p"), MalformedPacket},
		{"connect/will topic wildcard", V311, pk(0x10, mqtt311, 0x06, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x01, "+", 0x00, 0x00), TopicNameInvalid},
		{"connect/will topic empty", V5, pk(0x10, mqtt5, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, "c", 0x00, 0x00, 0x00, 0x00, 0x00), TopicNameInvalid},
		{"connect/v31 empty client id", V31, pk(0x10, 0x00, 0x06, "MQIsdp", 0x03, 0x02, 0x00, 0x00, 0x00, 0x00), ClientIdentifierNotValid},
		{"connect/v31 client id of 24", V31, pk(0x10, 0x00, 0x06, "MQIsdp", 0x03, 0x02, 0x00, 0x00, 0x00, 0x18, long), ClientIdentifierNotValid},
		{"connect/v311 empty client id without clean session", V311, pk(0x10, mqtt311, 0x00, 0x00, 0x00, 0x00, 0x00), ClientIdentifierNotValid},

		// Reason codes allowed per packet (MQTT 5 section 2.4).
		{"code/connack v5", V5, pk(0x20, 0x00, 0x01, 0x00), ProtocolError},
		{"code/connack v311 return code 6", V311, pk(0x20, 0x00, 0x06), MalformedPacket},
		{"code/connack reserved ack flags", V311, pk(0x20, 0x02, 0x00), MalformedPacket},
		{"code/connack session present on refusal", V311, pk(0x20, 0x01, 0x05), ProtocolError},
		{"code/connack session present on refusal v5", V5, pk(0x20, 0x01, 0x87, 0x00), ProtocolError},
		{"code/puback", V5, pk(0x40, 0x00, 0x01, 0x92), ProtocolError},
		{"code/pubrec", V5, pk(0x50, 0x00, 0x01, 0x01), ProtocolError},
		{"code/pubrel", V5, pk(0x62, 0x00, 0x01, 0x10), ProtocolError},
		{"code/pubcomp", V5, pk(0x70, 0x00, 0x01, 0x80), ProtocolError},
		{"code/suback v5", V5, pk(0x90, 0x00, 0x01, 0x00, 0x03), ProtocolError},
		{"code/suback v311", V311, pk(0x90, 0x00, 0x01, 0x87), MalformedPacket},
		{"code/suback none", V5, pk(0x90, 0x00, 0x01, 0x00), ProtocolError},
		{"code/unsuback v5", V5, pk(0xB0, 0x00, 0x01, 0x00, 0x01), ProtocolError},
		{"code/unsuback none v5", V5, pk(0xB0, 0x00, 0x01, 0x00), ProtocolError},
		{"code/disconnect", V5, pk(0xE0, 0x01), ProtocolError},
		{"code/auth", V5, pk(0xF0, 0x01, 0x00), ProtocolError},
		{"auth/continue without method", V5, pk(0xF0, 0x18, 0x00), ProtocolError},
		{"auth/in v311", V311, pk(0xF0), MalformedPacket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := decodeRaw(tt.raw, tt.v)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("decode(% X) = %#v, %v; want *Error with %v", tt.raw, p, err, tt.code)
			}
			if testing.Verbose() {
				t.Log(e)
			}
			if e.Code != tt.code || strings.HasPrefix(e.Reason, "test:") {
				t.Fatalf("decode(% X): %v; want code %v", tt.raw, err, tt.code)
			}
		})
	}
}

// TestValidEdgeCases are inputs close to the malformed ones that must decode.
func TestValidEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		v    Version
		raw  []byte
	}{
		{"two user properties", V5, publishWith(0x26, 0x00, 0x00, 0x00, 0x00, 0x26, 0x00, 0x00, 0x00, 0x00)},
		{"two subscription identifiers in publish", V5, publishWith(0x0B, 0x01, 0x0B, 0x01)},
		{"bom in topic", V311, pk(0x30, 0x00, 0x03, 0xEF, 0xBB, 0xBF)},
		{"non-minimal property length", V5, pk(0x30, topicAB, 0x80, 0x00)},
		{"v311 empty client id with clean session", V311, pk(0x10, mqtt311, 0x02, 0x00, 0x00, 0x00, 0x00)},
		{"v5 empty client id without clean start", V5, pk(0x10, mqtt5, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)},
		{"v311 long client id", V311, pk(0x10, mqtt311, 0x02, 0x00, 0x00, 0x00, 0x18, strings.Repeat("x", 24))},
		{"v31 client id of 23", V31, pk(0x10, 0x00, 0x06, "MQIsdp", 0x03, 0x02, 0x00, 0x00, 0x00, 0x17, strings.Repeat("x", 23))},
		{"share in v311 is a plain filter", V311, pk(0x82, 0x00, 0x01, 0x00, 0x09, "$share//a", 0x00)},
		{"no local on plain filter", V5, pk(0x82, 0x00, 0x01, 0x00, topicAB, 0x04)},
		{"empty payload format 0", V5, publishWith(0x01, 0x00)},
		{"disconnect with code only", V5, pk(0xE0, 0x8E)},
		{"puback with empty properties", V5, pk(0x40, 0x00, 0x01, 0x00, 0x00)},
		{"zero-length reason string", V5, pk(0x40, 0x00, 0x01, 0x10, props(0x1F, 0x00, 0x00))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := decodeRaw(tt.raw, tt.v)
			if err != nil {
				t.Fatalf("decode(% X): %v", tt.raw, err)
			}
			roundTrip(t, p, tt.v, p)
		})
	}
}
