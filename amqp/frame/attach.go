package frame

import (
	"github.com/ferry-iot/ferry/amqp/encoding"
)

// Role is a link endpoint's role (part 2, section 2.8.1): false is sender.
type Role bool

const (
	RoleSender   Role = false
	RoleReceiver Role = true
)

func (r Role) String() string {
	if r == RoleReceiver {
		return "receiver"
	}
	return "sender"
}

// SenderSettleMode is snd-settle-mode (part 2, section 2.8.2).
type SenderSettleMode uint8

const (
	SenderSettleUnsettled SenderSettleMode = 0 // sender sends all deliveries unsettled
	SenderSettleSettled   SenderSettleMode = 1 // sender sends all deliveries settled
	SenderSettleMixed     SenderSettleMode = 2 // either; the default
)

// ReceiverSettleMode is rcv-settle-mode (part 2, section 2.8.3).
type ReceiverSettleMode uint8

const (
	ReceiverSettleFirst  ReceiverSettleMode = 0 // receiver settles first; the default
	ReceiverSettleSecond ReceiverSettleMode = 1 // receiver settles after the sender
)

// Attach attaches a link to a session (part 2, section 2.7.3).
//
//	<type name="attach" class="composite" source="list" provides="frame">
//	    <descriptor name="amqp:attach:list" code="0x00000000:0x00000012"/>
//	    <field name="name" type="string" mandatory="true"/>
//	    <field name="handle" type="handle" mandatory="true"/>
//	    <field name="role" type="role" mandatory="true"/>
//	    <field name="snd-settle-mode" type="sender-settle-mode" default="mixed"/>
//	    <field name="rcv-settle-mode" type="receiver-settle-mode" default="first"/>
//	    <field name="source" type="*" requires="source"/>
//	    <field name="target" type="*" requires="target"/>
//	    <field name="unsettled" type="map"/>
//	    <field name="incomplete-unsettled" type="boolean" default="false"/>
//	    <field name="initial-delivery-count" type="sequence-no"/>
//	    <field name="max-message-size" type="ulong"/>
//	    <field name="offered-capabilities" type="symbol" multiple="true"/>
//	    <field name="desired-capabilities" type="symbol" multiple="true"/>
//	    <field name="properties" type="fields"/>
//	</type>
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 Role
	SndSettleMode        SenderSettleMode
	RcvSettleMode        ReceiverSettleMode
	Source               *Source
	Target               *Target
	Unsettled            encoding.Map // delivery-tag to state; carried, not interpreted
	IncompleteUnsettled  bool
	InitialDeliveryCount *uint32 // mandatory when Role is RoleSender
	MaxMessageSize       uint64  // 0: no limit
	OfferedCapabilities  []encoding.Symbol
	DesiredCapabilities  []encoding.Symbol
	Properties           map[encoding.Symbol]any
}

func (*Attach) body() {}

// AppendBody implements Body.
func (a *Attach) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeAttach)
	f.strAlways(a.Name)
	f.uint(a.Handle)
	f.boolAlways(bool(a.Role))
	if a.SndSettleMode == SenderSettleMixed {
		f.null()
	} else {
		f.ubyte(uint8(a.SndSettleMode))
	}
	if a.RcvSettleMode == ReceiverSettleFirst {
		f.null()
	} else {
		f.ubyte(uint8(a.RcvSettleMode))
	}
	f.composite(a.Source, a.Source != nil)
	f.composite(a.Target, a.Target != nil)
	if a.Unsettled != nil {
		f.value(a.Unsettled)
	} else {
		f.null()
	}
	f.bool(a.IncompleteUnsettled)
	f.optUint(a.InitialDeliveryCount)
	if a.MaxMessageSize == 0 {
		f.null()
	} else {
		f.ulong(a.MaxMessageSize)
	}
	f.symbols(a.OfferedCapabilities)
	f.symbols(a.DesiredCapabilities)
	f.symMap(a.Properties)
	return f.end()
}

func (a *Attach) decode(r *encoding.Reader) error {
	a.SndSettleMode = SenderSettleMixed
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			a.Name = r.String()
		case 1:
			a.Handle = r.Uint()
		case 2:
			a.Role = Role(r.Bool())
		case 3:
			a.SndSettleMode = SenderSettleMode(r.Ubyte())
			if a.SndSettleMode > SenderSettleMixed {
				r.Fail(decodeErr("attach: snd-settle-mode %d", a.SndSettleMode))
			}
		case 4:
			a.RcvSettleMode = ReceiverSettleMode(r.Ubyte())
			if a.RcvSettleMode > ReceiverSettleSecond {
				r.Fail(decodeErr("attach: rcv-settle-mode %d", a.RcvSettleMode))
			}
		case 5:
			a.Source = readSource(r)
		case 6:
			a.Target = readTarget(r)
		case 7:
			m, _ := r.Value().(encoding.Map)
			a.Unsettled = m
		case 8:
			a.IncompleteUnsettled = r.Bool()
		case 9:
			a.InitialDeliveryCount = optUint(r.Uint())
		case 10:
			a.MaxMessageSize = r.Ulong()
		case 11:
			a.OfferedCapabilities = r.Symbols()
		case 12:
			a.DesiredCapabilities = r.Symbols()
		case 13:
			a.Properties = readSymMap(r)
		default:
			r.Skip()
		}
	})
	return requireFields(r, "attach", seen, 0b111)
}

// Detach detaches a link (part 2, section 2.7.7).
//
//	<type name="detach" class="composite" source="list" provides="frame">
//	    <descriptor name="amqp:detach:list" code="0x00000000:0x00000016"/>
//	    <field name="handle" type="handle" mandatory="true"/>
//	    <field name="closed" type="boolean" default="false"/>
//	    <field name="error" type="error"/>
//	</type>
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

func (*Detach) body() {}

// AppendBody implements Body.
func (d *Detach) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeDetach)
	f.uint(d.Handle)
	f.bool(d.Closed)
	f.composite(d.Error, d.Error != nil)
	return f.end()
}

func (d *Detach) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			d.Handle = r.Uint()
		case 1:
			d.Closed = r.Bool()
		case 2:
			d.Error = readError(r)
		default:
			r.Skip()
		}
	})
	return requireFields(r, "detach", seen, 1)
}
