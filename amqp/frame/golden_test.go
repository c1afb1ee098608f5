package frame

import (
	"encoding/hex"
	"strings"

	"github.com/ferry-iot/ferry/amqp/encoding"
)

// goldenBodies pairs each performative with its encoding. The bytes were
// checked field by field against the spec's type definitions; the amqp
// package's interoperability tests (go-amqp, Qpid Proton) check the
// decoder against real clients as well.
var goldenBodies = []struct {
	name string
	body Body
	wire []byte
}{
	{"open", &Open{ContainerID: "c", MaxFrameSize: 512, ChannelMax: 7, IdleTimeout: 0},
		// descriptor 0x10; list8 size 13, 4 fields: container-id "c", hostname
		// null, max-frame-size uint 512, channel-max ushort 7
		h("00 53 10 c0 0d 04 a1 01 63 40 70 00 00 02 00 60 00 07")},
	{"begin", &Begin{RemoteChannel: ptr16(1), NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 300, HandleMax: 4294967295},
		// remote-channel ushort 1, next-outgoing-id uint0, incoming-window
		// smalluint 100, outgoing-window uint 300; handle-max default dropped
		h("00 53 11 c0 0c 04 60 00 01 43 52 64 70 00 00 01 2c")},
	{"attach", &Attach{Name: "l", Handle: 1, Role: RoleReceiver, SndSettleMode: SenderSettleMixed, Source: &Source{Address: "q"}, Target: &Target{}},
		// name "l", handle 1, role true (receiver), both settle modes null
		// (defaults), source {address "q"}, target list0
		h("00 53 12 c0 16 07 a1 01 6c 52 01 41 40 40 00 53 28 c0 04 01 a1 01 71 00 53 29 45")},
	{"flow", &Flow{NextIncomingID: optUint(1), IncomingWindow: 2, NextOutgoingID: 3, OutgoingWindow: 4, Handle: optUint(0), DeliveryCount: optUint(5), LinkCredit: optUint(100), Drain: true},
		// next-incoming-id 1, incoming-window 2, next-outgoing-id 3,
		// outgoing-window 4, handle uint0, delivery-count 5, link-credit 100,
		// available null, drain true
		h("00 53 13 c0 10 09 52 01 52 02 52 03 52 04 43 52 05 52 64 40 41")},
	{"transfer", &Transfer{Handle: 0, DeliveryID: optUint(9), DeliveryTag: []byte{1}, MessageFormat: optUint(0), Payload: []byte{0xaa}},
		// handle uint0, delivery-id 9, delivery-tag vbin8 [01],
		// message-format uint0, then the payload byte aa
		h("00 53 14 c0 08 04 43 52 09 a0 01 01 43 aa")},
	{"disposition", &Disposition{Role: RoleReceiver, First: 1, Last: optUint(3), Settled: true, State: &Accepted{}},
		// role receiver, first 1, last 3, settled true, state accepted (list0)
		h("00 53 15 c0 0b 05 41 52 01 52 03 41 00 53 24 45")},
	{"detach", &Detach{Handle: 2, Closed: true, Error: &Error{Condition: CondNotFound, Description: "x"}},
		// handle 2, closed true, error {condition sym8 amqp:not-found,
		// description "x"}
		h("00 53 16 c0 1d 03 52 02 41 00 53 1d c0 14 02 a3 0e 61 6d 71 70 3a 6e 6f 74 2d 66 6f 75 6e 64 a1 01 78")},
	{"end", &End{},
		// no fields: list0
		h("00 53 17 45")},
	{"close", &Close{Error: &Error{Condition: CondFramingError}},
		// error {condition amqp:connection:framing-error}
		h("00 53 18 c0 26 01 00 53 1d c0 20 01 a3 1d 61 6d 71 70 3a 63 6f 6e 6e 65 63 74 69 6f 6e 3a 66 72 61 6d 69 6e 67 2d 65 72 72 6f 72")},
	{"sasl-mechanisms", &SASLMechanisms{Mechanisms: []encoding.Symbol{SASLAnonymous, SASLPlain}},
		// array8 of sym8: ANONYMOUS, PLAIN
		h("00 53 40 c0 15 01 e0 12 02 a3 09 41 4e 4f 4e 59 4d 4f 55 53 05 50 4c 41 49 4e")},
	{"sasl-init", &SASLInit{Mechanism: SASLPlain, InitialResponse: []byte("\x00u\x00p")},
		// mechanism PLAIN, initial-response vbin8 "\0u\0p"
		h("00 53 41 c0 0e 02 a3 05 50 4c 41 49 4e a0 04 00 75 00 70")},
	{"sasl-challenge", &SASLChallenge{Challenge: []byte{}},
		// empty challenge (mandatory, so vbin8 of length 0, not null)
		h("00 53 42 c0 03 01 a0 00")},
	{"sasl-response", &SASLResponse{Response: []byte{1}},
		h("00 53 43 c0 04 01 a0 01 01")},
	{"sasl-outcome", &SASLOutcome{Code: SASLAuth},
		// code ubyte 1 (auth)
		h("00 53 44 c0 03 01 50 01")},
}

func ptr16(v uint16) *uint16 { return &v }

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}
