package frame

import (
	"github.com/ferry-iot/ferry/amqp/encoding"
)

// Flow updates session windows and, with a handle, link credit (part 2,
// section 2.7.4).
//
//	<type name="flow" class="composite" source="list" provides="frame">
//	    <descriptor name="amqp:flow:list" code="0x00000000:0x00000013"/>
//	    <field name="next-incoming-id" type="transfer-number"/>
//	    <field name="incoming-window" type="uint" mandatory="true"/>
//	    <field name="next-outgoing-id" type="transfer-number" mandatory="true"/>
//	    <field name="outgoing-window" type="uint" mandatory="true"/>
//	    <field name="handle" type="handle"/>
//	    <field name="delivery-count" type="sequence-no"/>
//	    <field name="link-credit" type="uint"/>
//	    <field name="available" type="uint"/>
//	    <field name="drain" type="boolean" default="false"/>
//	    <field name="echo" type="boolean" default="false"/>
//	    <field name="properties" type="fields"/>
//	</type>
type Flow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32 // nil: a session-only flow
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
	Properties     map[encoding.Symbol]any
}

func (*Flow) body() {}

// AppendBody implements Body.
func (fl *Flow) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeFlow)
	f.optUint(fl.NextIncomingID)
	f.uint(fl.IncomingWindow)
	f.uint(fl.NextOutgoingID)
	f.uint(fl.OutgoingWindow)
	f.optUint(fl.Handle)
	f.optUint(fl.DeliveryCount)
	f.optUint(fl.LinkCredit)
	f.optUint(fl.Available)
	f.bool(fl.Drain)
	f.bool(fl.Echo)
	f.symMap(fl.Properties)
	return f.end()
}

func (fl *Flow) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			fl.NextIncomingID = optUint(r.Uint())
		case 1:
			fl.IncomingWindow = r.Uint()
		case 2:
			fl.NextOutgoingID = r.Uint()
		case 3:
			fl.OutgoingWindow = r.Uint()
		case 4:
			fl.Handle = optUint(r.Uint())
		case 5:
			fl.DeliveryCount = optUint(r.Uint())
		case 6:
			fl.LinkCredit = optUint(r.Uint())
		case 7:
			fl.Available = optUint(r.Uint())
		case 8:
			fl.Drain = r.Bool()
		case 9:
			fl.Echo = r.Bool()
		case 10:
			fl.Properties = readSymMap(r)
		default:
			r.Skip()
		}
	})
	return requireFields(r, "flow", seen, 0b1110)
}
