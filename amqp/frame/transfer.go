package frame

import (
	"github.com/ferry-iot/ferry/amqp/encoding"
)

// Transfer carries a message, or part of one, on a link (part 2, section
// 2.7.5). The message bytes follow the performative in the frame.
//
//	<type name="transfer" class="composite" source="list" provides="frame">
//	    <descriptor name="amqp:transfer:list" code="0x00000000:0x00000014"/>
//	    <field name="handle" type="handle" mandatory="true"/>
//	    <field name="delivery-id" type="delivery-number"/>
//	    <field name="delivery-tag" type="delivery-tag"/>
//	    <field name="message-format" type="message-format"/>
//	    <field name="settled" type="boolean"/>
//	    <field name="more" type="boolean" default="false"/>
//	    <field name="rcv-settle-mode" type="receiver-settle-mode"/>
//	    <field name="state" type="*" requires="delivery-state"/>
//	    <field name="resume" type="boolean" default="false"/>
//	    <field name="aborted" type="boolean" default="false"/>
//	    <field name="batchable" type="boolean" default="false"/>
//	</type>
type Transfer struct {
	Handle        uint32
	DeliveryID    *uint32 // required on the first frame of a delivery
	DeliveryTag   []byte  // at most 32 bytes; required on the first frame
	MessageFormat *uint32
	Settled       bool
	More          bool
	RcvSettleMode *ReceiverSettleMode
	State         DeliveryState
	Resume        bool
	Aborted       bool
	Batchable     bool

	// Payload is the message bytes carried by this frame. After
	// DecodeBody it aliases the decoded buffer.
	Payload []byte
}

func (*Transfer) body() {}

// AppendBody implements Body.
func (t *Transfer) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeTransfer)
	f.uint(t.Handle)
	f.optUint(t.DeliveryID)
	f.binary(t.DeliveryTag)
	f.optUint(t.MessageFormat)
	f.bool(t.Settled)
	f.bool(t.More)
	if t.RcvSettleMode != nil {
		f.ubyte(uint8(*t.RcvSettleMode))
	} else {
		f.null()
	}
	f.composite(t.State, t.State != nil)
	f.bool(t.Resume)
	f.bool(t.Aborted)
	f.bool(t.Batchable)
	dst, err := f.end()
	return append(dst, t.Payload...), err
}

func (t *Transfer) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			t.Handle = r.Uint()
		case 1:
			t.DeliveryID = optUint(r.Uint())
		case 2:
			t.DeliveryTag = r.Binary()
			if len(t.DeliveryTag) > 32 {
				r.Fail(decodeErr("transfer: delivery-tag of %d bytes", len(t.DeliveryTag)))
			}
		case 3:
			t.MessageFormat = optUint(r.Uint())
		case 4:
			t.Settled = r.Bool()
		case 5:
			t.More = r.Bool()
		case 6:
			m := ReceiverSettleMode(r.Ubyte())
			t.RcvSettleMode = &m
		case 7:
			t.State = readState(r)
		case 8:
			t.Resume = r.Bool()
		case 9:
			t.Aborted = r.Bool()
		case 10:
			t.Batchable = r.Bool()
		default:
			r.Skip()
		}
	})
	t.Payload = r.Rest()
	return requireFields(r, "transfer", seen, 1)
}

// Disposition informs the peer of delivery state changes over a range of
// delivery ids (part 2, section 2.7.6).
//
//	<type name="disposition" class="composite" source="list" provides="frame">
//	    <descriptor name="amqp:disposition:list" code="0x00000000:0x00000015"/>
//	    <field name="role" type="role" mandatory="true"/>
//	    <field name="first" type="delivery-number" mandatory="true"/>
//	    <field name="last" type="delivery-number"/>
//	    <field name="settled" type="boolean" default="false"/>
//	    <field name="state" type="*" requires="delivery-state"/>
//	    <field name="batchable" type="boolean" default="false"/>
//	</type>
type Disposition struct {
	Role      Role // the role of the sender of this frame
	First     uint32
	Last      *uint32 // nil: same as First
	Settled   bool
	State     DeliveryState
	Batchable bool
}

func (*Disposition) body() {}

// AppendBody implements Body.
func (d *Disposition) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeDisposition)
	f.boolAlways(bool(d.Role))
	f.uint(d.First)
	f.optUint(d.Last)
	f.bool(d.Settled)
	f.composite(d.State, d.State != nil)
	f.bool(d.Batchable)
	return f.end()
}

func (d *Disposition) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			d.Role = Role(r.Bool())
		case 1:
			d.First = r.Uint()
		case 2:
			d.Last = optUint(r.Uint())
		case 3:
			d.Settled = r.Bool()
		case 4:
			d.State = readState(r)
		case 5:
			d.Batchable = r.Bool()
		default:
			r.Skip()
		}
	})
	return requireFields(r, "disposition", seen, 0b11)
}
