package packet

// Golden vectors: annotated raw bytes paired with the packet they encode.
// Encode, decode, round-trip and fuzz-seed tests all use them.

import "fmt"

type golden struct {
	name string
	v    Version
	pkt  Packet
	raw  []byte
}

// cat builds a byte vector from bytes, ints and strings so that the
// vectors below can be written and annotated field by field.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			b = append(b, byte(p))
		case byte:
			b = append(b, p)
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic(fmt.Sprintf("cat: %T", p))
		}
	}
	return b
}

func ptr[T any](v T) *T { return &v }

var goldens = []golden{
	// ---- MQTT 3.1 and 3.1.1 ----
	{"v31/connect", V31, &Connect{ProtocolName: "MQIsdp", Version: V31, CleanStart: true, KeepAlive: 10, ClientID: "abc"}, cat(
		0x10, 0x11, // CONNECT, remaining length 17
		0x00, 0x06, "MQIsdp", // protocol name
		0x03,       // protocol level 3
		0x02,       // flags: clean session
		0x00, 0x0A, // keep alive 10 s
		0x00, 0x03, "abc", // client identifier
	)},
	{"v311/connect/minimal", V311, &Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 60, ClientID: "c1"}, cat(
		0x10, 0x0E, // CONNECT, remaining length 14
		0x00, 0x04, "MQTT", // protocol name
		0x04,       // protocol level 4
		0x02,       // flags: clean session
		0x00, 0x3C, // keep alive 60 s
		0x00, 0x02, "c1", // client identifier
	)},
	{"v311/connect/full", V311, &Connect{
		ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 30, ClientID: "dev",
		WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "w/t", WillPayload: []byte("bye"),
		UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw"),
	}, cat(
		0x10, 0x20, // CONNECT, remaining length 32
		0x00, 0x04, "MQTT", // protocol name
		0x04,       // protocol level 4
		0xEE,       // flags: user name, password, will retain, will QoS 1, will, clean session
		0x00, 0x1E, // keep alive 30 s
		0x00, 0x03, "dev", // client identifier
		0x00, 0x03, "w/t", // will topic
		0x00, 0x03, "bye", // will payload
		0x00, 0x01, "u", // user name
		0x00, 0x02, "pw", // password
	)},
	{"v311/connack/accepted", V311, &Connack{}, cat(
		0x20, 0x02, // CONNACK, remaining length 2
		0x00, // acknowledge flags: no session present
		0x00, // return code 0: accepted
	)},
	{"v311/connack/session-present", V311, &Connack{SessionPresent: true}, cat(
		0x20, 0x02, // CONNACK, remaining length 2
		0x01, // acknowledge flags: session present
		0x00, // return code 0
	)},
	{"v311/connack/refused", V311, &Connack{ReasonCode: NotAuthorized}, cat(
		0x20, 0x02, // CONNACK, remaining length 2
		0x00, // acknowledge flags
		0x05, // return code 5: not authorized
	)},
	{"v311/publish/qos0", V311, &Publish{Topic: "a/b", Payload: []byte("hi")}, cat(
		0x30, 0x07, // PUBLISH, QoS 0, remaining length 7
		0x00, 0x03, "a/b", // topic name
		"hi", // payload
	)},
	{"v311/publish/qos1-dup-retain", V311, &Publish{Dup: true, QoS: 1, Retain: true, Topic: "a/b", PacketID: 10, Payload: []byte("hello")}, cat(
		0x3B, 0x0C, // PUBLISH, DUP, QoS 1, RETAIN, remaining length 12
		0x00, 0x03, "a/b", // topic name
		0x00, 0x0A, // packet identifier 10
		"hello", // payload
	)},
	{"v311/publish/qos2-empty", V311, &Publish{QoS: 2, Topic: "t", PacketID: 0xFFFF}, cat(
		0x34, 0x05, // PUBLISH, QoS 2, remaining length 5
		0x00, 0x01, "t", // topic name
		0xFF, 0xFF, // packet identifier 65535, no payload
	)},
	{"v311/puback", V311, &Puback{PacketID: 10}, cat(0x40, 0x02, 0x00, 0x0A)},   // PUBACK, length 2, id 10
	{"v311/pubrec", V311, &Pubrec{PacketID: 10}, cat(0x50, 0x02, 0x00, 0x0A)},   // PUBREC, length 2, id 10
	{"v311/pubrel", V311, &Pubrel{PacketID: 10}, cat(0x62, 0x02, 0x00, 0x0A)},   // PUBREL, flags 0b0010, length 2, id 10
	{"v311/pubcomp", V311, &Pubcomp{PacketID: 10}, cat(0x70, 0x02, 0x00, 0x0A)}, // PUBCOMP, length 2, id 10
	{"v311/subscribe", V311, &Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "#", QoS: 2}}}, cat(
		0x82, 0x0C, // SUBSCRIBE, flags 0b0010, remaining length 12
		0x00, 0x0A, // packet identifier 10
		0x00, 0x03, "a/b", 0x01, // filter "a/b", QoS 1
		0x00, 0x01, "#", 0x02, // filter "#", QoS 2
	)},
	{"v311/suback", V311, &Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError}}, cat(
		0x90, 0x06, // SUBACK, remaining length 6
		0x00, 0x0A, // packet identifier 10
		0x00, 0x01, 0x02, 0x80, // return codes: QoS 0, QoS 1, QoS 2, failure
	)},
	{"v311/unsubscribe", V311, &Unsubscribe{PacketID: 11, Filters: []string{"a/b", "c/+"}}, cat(
		0xA2, 0x0C, // UNSUBSCRIBE, flags 0b0010, remaining length 12
		0x00, 0x0B, // packet identifier 11
		0x00, 0x03, "a/b", // filter
		0x00, 0x03, "c/+", // filter
	)},
	{"v311/unsuback", V311, &Unsuback{PacketID: 11}, cat(0xB0, 0x02, 0x00, 0x0B)}, // UNSUBACK, length 2, id 11
	{"v311/pingreq", V311, &Pingreq{}, cat(0xC0, 0x00)},                           // PINGREQ, length 0
	{"v311/pingresp", V311, &Pingresp{}, cat(0xD0, 0x00)},                         // PINGRESP, length 0
	{"v311/disconnect", V311, &Disconnect{}, cat(0xE0, 0x00)},                     // DISCONNECT, length 0

	// ---- MQTT 5.0 ----
	{"v5/connect/minimal", V5, &Connect{ProtocolName: "MQTT", Version: V5, CleanStart: true, KeepAlive: 60, ClientID: "c1"}, cat(
		0x10, 0x0F, // CONNECT, remaining length 15
		0x00, 0x04, "MQTT", // protocol name
		0x05,       // protocol level 5
		0x02,       // flags: clean start
		0x00, 0x3C, // keep alive 60 s
		0x00,             // property length 0
		0x00, 0x02, "c1", // client identifier
	)},
	{"v5/connect/full", V5, &Connect{
		ProtocolName: "MQTT", Version: V5, CleanStart: true, KeepAlive: 30, ClientID: "dev",
		Properties: Properties{
			SessionExpiryInterval: ptr[uint32](3600), AuthMethod: "PLAIN", AuthData: []byte("xy"),
			RequestProblemInfo: ptr[byte](0), RequestResponseInfo: ptr[byte](1),
			ReceiveMaximum: ptr[uint16](20), TopicAliasMaximum: ptr[uint16](10),
			User: []UserProperty{{"k", "v"}}, MaximumPacketSize: ptr[uint32](4096),
		},
		WillFlag: true, WillQoS: 2, WillTopic: "w/t", WillPayload: []byte("bye"),
		WillProperties: Properties{
			PayloadFormat: ptr[byte](1), MessageExpiry: ptr[uint32](60), ContentType: "text",
			ResponseTopic: "r/t", CorrelationData: []byte{1, 2}, WillDelayInterval: ptr[uint32](5),
			User: []UserProperty{{"a", "b"}},
		},
		UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw"),
	}, cat(
		0x10, 0x6F, // CONNECT, remaining length 111
		0x00, 0x04, "MQTT", // protocol name
		0x05,       // protocol level 5
		0xD6,       // flags: user name, password, will QoS 2, will, clean start
		0x00, 0x1E, // keep alive 30 s
		0x28,                         // property length 40
		0x11, 0x00, 0x00, 0x0E, 0x10, // session expiry interval 3600
		0x15, 0x00, 0x05, "PLAIN", // authentication method
		0x16, 0x00, 0x02, "xy", // authentication data
		0x17, 0x00, // request problem information 0
		0x19, 0x01, // request response information 1
		0x21, 0x00, 0x14, // receive maximum 20
		0x22, 0x00, 0x0A, // topic alias maximum 10
		0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // user property k=v
		0x27, 0x00, 0x00, 0x10, 0x00, // maximum packet size 4096
		0x00, 0x03, "dev", // client identifier
		0x25,       // will property length 37
		0x01, 0x01, // payload format indicator 1 (UTF-8)
		0x02, 0x00, 0x00, 0x00, 0x3C, // message expiry interval 60
		0x03, 0x00, 0x04, "text", // content type
		0x08, 0x00, 0x03, "r/t", // response topic
		0x09, 0x00, 0x02, 0x01, 0x02, // correlation data
		0x18, 0x00, 0x00, 0x00, 0x05, // will delay interval 5
		0x26, 0x00, 0x01, "a", 0x00, 0x01, "b", // user property a=b
		0x00, 0x03, "w/t", // will topic
		0x00, 0x03, "bye", // will payload
		0x00, 0x01, "u", // user name
		0x00, 0x02, "pw", // password
	)},
	{"v5/connect/password-only", V5, &Connect{ProtocolName: "MQTT", Version: V5, ClientID: "", PasswordFlag: true, Password: []byte("t")}, cat(
		0x10, 0x10, // CONNECT, remaining length 16
		0x00, 0x04, "MQTT", // protocol name
		0x05,       // protocol level 5
		0x40,       // flags: password only (allowed in v5)
		0x00, 0x00, // keep alive 0
		0x00,       // property length 0
		0x00, 0x00, // empty client identifier
		0x00, 0x01, "t", // password
	)},
	{"v5/connack/minimal", V5, &Connack{}, cat(
		0x20, 0x03, // CONNACK, remaining length 3
		0x00, // acknowledge flags
		0x00, // reason code Success
		0x00, // property length 0
	)},
	{"v5/connack/full", V5, &Connack{SessionPresent: true, Properties: Properties{
		SessionExpiryInterval: ptr[uint32](3600), AssignedClientID: "auto", ServerKeepAlive: ptr[uint16](30),
		ResponseInfo: "resp", ReasonString: "ok", ReceiveMaximum: ptr[uint16](100),
		TopicAliasMaximum: ptr[uint16](10), MaximumQoS: ptr[byte](1), RetainAvailable: ptr[byte](0),
		User: []UserProperty{{"k", "v"}}, MaximumPacketSize: ptr[uint32](65536),
		WildcardSubAvailable: ptr[byte](1), SubIDAvailable: ptr[byte](0), SharedSubAvailable: ptr[byte](1),
	}}, cat(
		0x20, 0x3A, // CONNACK, remaining length 58
		0x01,                         // acknowledge flags: session present
		0x00,                         // reason code Success
		0x37,                         // property length 55
		0x11, 0x00, 0x00, 0x0E, 0x10, // session expiry interval 3600
		0x12, 0x00, 0x04, "auto", // assigned client identifier
		0x13, 0x00, 0x1E, // server keep alive 30
		0x1A, 0x00, 0x04, "resp", // response information
		0x1F, 0x00, 0x02, "ok", // reason string
		0x21, 0x00, 0x64, // receive maximum 100
		0x22, 0x00, 0x0A, // topic alias maximum 10
		0x24, 0x01, // maximum QoS 1
		0x25, 0x00, // retain available 0
		0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // user property
		0x27, 0x00, 0x01, 0x00, 0x00, // maximum packet size 65536
		0x28, 0x01, // wildcard subscription available
		0x29, 0x00, // subscription identifiers not available
		0x2A, 0x01, // shared subscription available
	)},
	{"v5/connack/server-moved", V5, &Connack{ReasonCode: UseAnotherServer, Properties: Properties{ServerReference: "other"}}, cat(
		0x20, 0x0B, // CONNACK, remaining length 11
		0x00,                      // acknowledge flags
		0x9C,                      // reason code Use another server
		0x08,                      // property length 8
		0x1C, 0x00, 0x05, "other", // server reference
	)},
	{"v5/publish/qos0", V5, &Publish{Topic: "a/b", Payload: []byte("hi")}, cat(
		0x30, 0x08, // PUBLISH, QoS 0, remaining length 8
		0x00, 0x03, "a/b", // topic name
		0x00, // property length 0
		"hi", // payload
	)},
	{"v5/publish/qos1-props", V5, &Publish{QoS: 1, Retain: true, Topic: "a/b", PacketID: 10, Payload: []byte("hello"), Properties: Properties{
		PayloadFormat: ptr[byte](1), MessageExpiry: ptr[uint32](60), ContentType: "text", ResponseTopic: "r/t",
		CorrelationData: []byte{1, 2}, SubscriptionIdentifier: []uint32{5, 128}, TopicAlias: ptr[uint16](5),
		User: []UserProperty{{"k", "v"}},
	}}, cat(
		0x33, 0x35, // PUBLISH, QoS 1, RETAIN, remaining length 53
		0x00, 0x03, "a/b", // topic name
		0x00, 0x0A, // packet identifier 10
		0x28,       // property length 40
		0x01, 0x01, // payload format indicator 1
		0x02, 0x00, 0x00, 0x00, 0x3C, // message expiry interval 60
		0x03, 0x00, 0x04, "text", // content type
		0x08, 0x00, 0x03, "r/t", // response topic
		0x09, 0x00, 0x02, 0x01, 0x02, // correlation data
		0x0B, 0x05, // subscription identifier 5
		0x0B, 0x80, 0x01, // subscription identifier 128 (2-byte VBI)
		0x23, 0x00, 0x05, // topic alias 5
		0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // user property
		"hello", // payload
	)},
	{"v5/publish/alias-only", V5, &Publish{Topic: "", Payload: []byte("x"), Properties: Properties{TopicAlias: ptr[uint16](1)}}, cat(
		0x30, 0x07, // PUBLISH, QoS 0, remaining length 7
		0x00, 0x00, // empty topic name: the alias stands for it
		0x03,             // property length 3
		0x23, 0x00, 0x01, // topic alias 1
		"x", // payload
	)},
	{"v5/puback/minimal", V5, &Puback{PacketID: 10}, cat(
		0x40, 0x02, // PUBACK, remaining length 2: Success, no properties
		0x00, 0x0A, // packet identifier 10
	)},
	{"v5/puback/code", V5, &Puback{PacketID: 10, ReasonCode: NoMatchingSubscribers}, cat(
		0x40, 0x03, // PUBACK, remaining length 3: no property length
		0x00, 0x0A, // packet identifier 10
		0x10, // reason code No matching subscribers
	)},
	{"v5/puback/props", V5, &Puback{PacketID: 10, ReasonCode: NotAuthorized, Properties: Properties{ReasonString: "no"}}, cat(
		0x40, 0x09, // PUBACK, remaining length 9
		0x00, 0x0A, // packet identifier 10
		0x87,                   // reason code Not authorized
		0x05,                   // property length 5
		0x1F, 0x00, 0x02, "no", // reason string
	)},
	{"v5/pubrec", V5, &Pubrec{PacketID: 10, ReasonCode: QuotaExceeded}, cat(
		0x50, 0x03, // PUBREC, remaining length 3
		0x00, 0x0A, // packet identifier 10
		0x97, // reason code Quota exceeded
	)},
	{"v5/pubrel", V5, &Pubrel{PacketID: 10, ReasonCode: PacketIdentifierNotFound}, cat(
		0x62, 0x03, // PUBREL, flags 0b0010, remaining length 3
		0x00, 0x0A, // packet identifier 10
		0x92, // reason code Packet Identifier not found
	)},
	{"v5/pubrel/user", V5, &Pubrel{PacketID: 10, Properties: Properties{User: []UserProperty{{"k", "v"}}}}, cat(
		0x62, 0x0B, // PUBREL, flags 0b0010, remaining length 11
		0x00, 0x0A, // packet identifier 10
		0x00,                                   // reason code Success, present because properties follow
		0x07,                                   // property length 7
		0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // user property
	)},
	{"v5/pubcomp", V5, &Pubcomp{PacketID: 10}, cat(
		0x70, 0x02, // PUBCOMP, remaining length 2
		0x00, 0x0A, // packet identifier 10
	)},
	{"v5/subscribe", V5, &Subscribe{PacketID: 10, Properties: Properties{SubscriptionIdentifier: []uint32{128}}, Subscriptions: []Subscription{
		{Filter: "a/b", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
		{Filter: "$share/g/c/#", QoS: 2},
	}}, cat(
		0x82, 0x1B, // SUBSCRIBE, flags 0b0010, remaining length 27
		0x00, 0x0A, // packet identifier 10
		0x03,             // property length 3
		0x0B, 0x80, 0x01, // subscription identifier 128
		0x00, 0x03, "a/b", // filter
		0x2D,                       // options: retain handling 2, retain as published, no local, QoS 1
		0x00, 0x0C, "$share/g/c/#", // shared subscription filter
		0x02, // options: QoS 2
	)},
	{"v5/suback", V5, &Suback{PacketID: 10, Properties: Properties{ReasonString: "ok"},
		ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError, TopicFilterInvalid, WildcardSubscriptionsNotSupported}}, cat(
		0x90, 0x0E, // SUBACK, remaining length 14
		0x00, 0x0A, // packet identifier 10
		0x05,                   // property length 5
		0x1F, 0x00, 0x02, "ok", // reason string
		0x00, 0x01, 0x02, 0x80, 0x8F, 0xA2, // reason codes
	)},
	{"v5/unsubscribe", V5, &Unsubscribe{PacketID: 11, Properties: Properties{User: []UserProperty{{"k", "v"}}}, Filters: []string{"a/b", "c/+"}}, cat(
		0xA2, 0x14, // UNSUBSCRIBE, flags 0b0010, remaining length 20
		0x00, 0x0B, // packet identifier 11
		0x07,                                   // property length 7
		0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // user property
		0x00, 0x03, "a/b", // filter
		0x00, 0x03, "c/+", // filter
	)},
	{"v5/unsuback", V5, &Unsuback{PacketID: 11, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}}, cat(
		0xB0, 0x05, // UNSUBACK, remaining length 5
		0x00, 0x0B, // packet identifier 11
		0x00,       // property length 0
		0x00, 0x11, // reason codes: Success, No subscription existed
	)},
	{"v5/pingreq", V5, &Pingreq{}, cat(0xC0, 0x00)},   // PINGREQ, length 0
	{"v5/pingresp", V5, &Pingresp{}, cat(0xD0, 0x00)}, // PINGRESP, length 0
	{"v5/disconnect/minimal", V5, &Disconnect{}, cat(
		0xE0, 0x00, // DISCONNECT, remaining length 0: Normal disconnection
	)},
	{"v5/disconnect/code", V5, &Disconnect{ReasonCode: DisconnectWithWill}, cat(
		0xE0, 0x01, // DISCONNECT, remaining length 1: no property length
		0x04, // reason code Disconnect with Will Message
	)},
	{"v5/disconnect/props", V5, &Disconnect{ReasonCode: ServerShuttingDown, Properties: Properties{
		SessionExpiryInterval: ptr[uint32](0), ServerReference: "s", ReasonString: "bye",
	}}, cat(
		0xE0, 0x11, // DISCONNECT, remaining length 17
		0x8B,                         // reason code Server shutting down
		0x0F,                         // property length 15
		0x11, 0x00, 0x00, 0x00, 0x00, // session expiry interval 0
		0x1C, 0x00, 0x01, "s", // server reference
		0x1F, 0x00, 0x03, "bye", // reason string
	)},
	{"v5/auth/minimal", V5, &Auth{}, cat(
		0xF0, 0x00, // AUTH, remaining length 0: Success, no properties
	)},
	{"v5/auth/continue", V5, &Auth{ReasonCode: ContinueAuthentication, Properties: Properties{
		AuthMethod: "SCRAM", AuthData: []byte{1, 2, 3}, ReasonString: "r",
	}}, cat(
		0xF0, 0x14, // AUTH, remaining length 20
		0x18,                      // reason code Continue authentication
		0x12,                      // property length 18
		0x15, 0x00, 0x05, "SCRAM", // authentication method
		0x16, 0x00, 0x03, 0x01, 0x02, 0x03, // authentication data
		0x1F, 0x00, 0x01, "r", // reason string
	)},
}
