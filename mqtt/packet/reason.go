package packet

import "fmt"

// ReasonCode is an MQTT 5 reason code (MQTT 5 section 2.4). The 3.1.1 return
// codes are mapped onto these (see ConnackReturnCodeV3), so callers use one
// set of codes whatever the version.
type ReasonCode byte

// Reason codes. Some values have several names, one per packet where they
// are used.
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWill                  ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

var reasonNames = [256]string{
	Success:                             "Success",
	GrantedQoS1:                         "Granted QoS 1",
	GrantedQoS2:                         "Granted QoS 2",
	DisconnectWithWill:                  "Disconnect with Will Message",
	NoMatchingSubscribers:               "No matching subscribers",
	NoSubscriptionExisted:               "No subscription existed",
	ContinueAuthentication:              "Continue authentication",
	ReAuthenticate:                      "Re-authenticate",
	UnspecifiedError:                    "Unspecified error",
	MalformedPacket:                     "Malformed Packet",
	ProtocolError:                       "Protocol Error",
	ImplementationSpecificError:         "Implementation specific error",
	UnsupportedProtocolVersion:          "Unsupported Protocol Version",
	ClientIdentifierNotValid:            "Client Identifier not valid",
	BadUserNameOrPassword:               "Bad User Name or Password",
	NotAuthorized:                       "Not authorized",
	ServerUnavailable:                   "Server unavailable",
	ServerBusy:                          "Server busy",
	Banned:                              "Banned",
	ServerShuttingDown:                  "Server shutting down",
	BadAuthenticationMethod:             "Bad authentication method",
	KeepAliveTimeout:                    "Keep Alive timeout",
	SessionTakenOver:                    "Session taken over",
	TopicFilterInvalid:                  "Topic Filter invalid",
	TopicNameInvalid:                    "Topic Name invalid",
	PacketIdentifierInUse:               "Packet Identifier in use",
	PacketIdentifierNotFound:            "Packet Identifier not found",
	ReceiveMaximumExceeded:              "Receive Maximum exceeded",
	TopicAliasInvalid:                   "Topic Alias invalid",
	PacketTooLarge:                      "Packet too large",
	MessageRateTooHigh:                  "Message rate too high",
	QuotaExceeded:                       "Quota exceeded",
	AdministrativeAction:                "Administrative action",
	PayloadFormatInvalid:                "Payload format invalid",
	RetainNotSupported:                  "Retain not supported",
	QoSNotSupported:                     "QoS not supported",
	UseAnotherServer:                    "Use another server",
	ServerMoved:                         "Server moved",
	SharedSubscriptionsNotSupported:     "Shared Subscriptions not supported",
	ConnectionRateExceeded:              "Connection rate exceeded",
	MaximumConnectTime:                  "Maximum connect time",
	SubscriptionIdentifiersNotSupported: "Subscription Identifiers not supported",
	WildcardSubscriptionsNotSupported:   "Wildcard Subscriptions not supported",
}

// String returns the spec's name of c; 0x00 is "Success" whatever the packet.
func (c ReasonCode) String() string {
	if s := reasonNames[c]; s != "" {
		return s
	}
	return fmt.Sprintf("ReasonCode(0x%02X)", byte(c))
}

// IsError reports whether c is a failure code (>= 0x80).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// ConnackReturnCodeV3 maps a v5 CONNACK reason code to a 3.1.1 CONNACK return
// code 0..5 (3.1.1 section 3.2.2.3). Failure codes without a 3.1.1
// counterpart become 3 (Server unavailable), the generic refusal.
func ConnackReturnCodeV3(c ReasonCode) byte {
	switch c {
	case Success:
		return 0
	case UnsupportedProtocolVersion:
		return 1 // unacceptable protocol version
	case ClientIdentifierNotValid:
		return 2 // identifier rejected
	case BadUserNameOrPassword, BadAuthenticationMethod:
		return 4 // bad user name or password
	case NotAuthorized, Banned:
		return 5 // not authorized
	}
	return 3 // server unavailable
}

// connackReasonFromV3 is the inverse of ConnackReturnCodeV3 on 0..5, chosen
// so that decode then encode gives back the same byte.
var connackReasonFromV3 = [...]ReasonCode{
	Success, UnsupportedProtocolVersion, ClientIdentifierNotValid,
	ServerUnavailable, BadUserNameOrPassword, NotAuthorized,
}

// codeSet is a set of reason codes, one bit per value.
type codeSet [4]uint64

func newCodeSet(codes ...ReasonCode) codeSet {
	var s codeSet
	for _, c := range codes {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *codeSet) has(c ReasonCode) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// Reason codes allowed per packet type in MQTT 5 (section 2.4, table 2-6):
// CONNACK [MQTT-3.2.2-8], PUBACK [MQTT-3.4.2-1], PUBREC [MQTT-3.5.2-1],
// PUBREL [MQTT-3.6.2-1], PUBCOMP [MQTT-3.7.2-1], SUBACK [MQTT-3.9.3-2],
// UNSUBACK [MQTT-3.11.3-2], DISCONNECT [MQTT-3.14.2-1], AUTH [MQTT-3.15.2-1].
var (
	connackCodes = newCodeSet(Success, UnspecifiedError, MalformedPacket, ProtocolError,
		ImplementationSpecificError, UnsupportedProtocolVersion, ClientIdentifierNotValid,
		BadUserNameOrPassword, NotAuthorized, ServerUnavailable, ServerBusy, Banned,
		BadAuthenticationMethod, TopicNameInvalid, PacketTooLarge, QuotaExceeded,
		PayloadFormatInvalid, RetainNotSupported, QoSNotSupported, UseAnotherServer,
		ServerMoved, ConnectionRateExceeded)
	pubackCodes = newCodeSet(Success, NoMatchingSubscribers, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicNameInvalid, PacketIdentifierInUse,
		QuotaExceeded, PayloadFormatInvalid) // PUBACK and PUBREC
	pubrelCodes = newCodeSet(Success, PacketIdentifierNotFound) // PUBREL and PUBCOMP
	subackCodes = newCodeSet(GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse,
		QuotaExceeded, SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported,
		WildcardSubscriptionsNotSupported)
	unsubackCodes = newCodeSet(Success, NoSubscriptionExisted, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse)
	disconnectCodes = newCodeSet(NormalDisconnection, DisconnectWithWill, UnspecifiedError,
		MalformedPacket, ProtocolError, ImplementationSpecificError, NotAuthorized, ServerBusy,
		ServerShuttingDown, KeepAliveTimeout, SessionTakenOver, TopicFilterInvalid,
		TopicNameInvalid, ReceiveMaximumExceeded, TopicAliasInvalid, PacketTooLarge,
		MessageRateTooHigh, QuotaExceeded, AdministrativeAction, PayloadFormatInvalid,
		RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved,
		SharedSubscriptionsNotSupported, ConnectionRateExceeded, MaximumConnectTime,
		SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported)
	authCodes = newCodeSet(Success, ContinueAuthentication, ReAuthenticate)
)

// checkCode reports a reason code that t may not carry: the sender MUST use
// one of the packet's codes (clauses above), and a receiver treats any other
// as a Protocol Error.
func checkCode(t Type, set *codeSet, c ReasonCode) *Error {
	if !set.has(c) {
		return errorf(ProtocolError, "%v: reason code 0x%02X not allowed", t, byte(c))
	}
	return nil
}
