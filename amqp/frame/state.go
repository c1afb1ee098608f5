package frame

import (
	"github.com/ferry-iot/ferry/amqp/encoding"
)

// DeliveryState is the state of a delivery: an outcome (Accepted,
// Rejected, Released, Modified) or the non-terminal Received (part 3,
// section 3.4). The interface is sealed.
type DeliveryState interface {
	AppendBody(dst []byte) ([]byte, error)
	deliveryState()
}

// Outcome symbols, as listed in a source's outcomes field.
const (
	OutcomeAccepted encoding.Symbol = "amqp:accepted:list"
	OutcomeRejected encoding.Symbol = "amqp:rejected:list"
	OutcomeReleased encoding.Symbol = "amqp:released:list"
	OutcomeModified encoding.Symbol = "amqp:modified:list"
)

// Accepted is the accepted outcome (3.4.2).
//
//	<type name="accepted" class="composite" source="list" provides="delivery-state, outcome">
//	    <descriptor name="amqp:accepted:list" code="0x00000000:0x00000024"/>
//	</type>
type Accepted struct{}

// Rejected is the rejected outcome (3.4.3).
//
//	<type name="rejected" class="composite" source="list" provides="delivery-state, outcome">
//	    <descriptor name="amqp:rejected:list" code="0x00000000:0x00000025"/>
//	    <field name="error" type="error"/>
//	</type>
type Rejected struct {
	Error *Error
}

// Released is the released outcome (3.4.4).
//
//	<type name="released" class="composite" source="list" provides="delivery-state, outcome">
//	    <descriptor name="amqp:released:list" code="0x00000000:0x00000026"/>
//	</type>
type Released struct{}

// Modified is the modified outcome (3.4.5).
//
//	<type name="modified" class="composite" source="list" provides="delivery-state, outcome">
//	    <descriptor name="amqp:modified:list" code="0x00000000:0x00000027"/>
//	    <field name="delivery-failed" type="boolean"/>
//	    <field name="undeliverable-here" type="boolean"/>
//	    <field name="message-annotations" type="fields"/>
//	</type>
type Modified struct {
	DeliveryFailed     bool
	UndeliverableHere  bool
	MessageAnnotations map[encoding.Symbol]any
}

// Received is the received delivery state (3.4.1), used to resume
// partially transferred messages.
//
//	<type name="received" class="composite" source="list" provides="delivery-state">
//	    <descriptor name="amqp:received:list" code="0x00000000:0x00000023"/>
//	    <field name="section-number" type="uint" mandatory="true"/>
//	    <field name="section-offset" type="ulong" mandatory="true"/>
//	</type>
type Received struct {
	SectionNumber uint32
	SectionOffset uint64
}

func (*Accepted) deliveryState() {}
func (*Rejected) deliveryState() {}
func (*Released) deliveryState() {}
func (*Modified) deliveryState() {}
func (*Received) deliveryState() {}

// AppendBody implements DeliveryState.
func (*Accepted) AppendBody(dst []byte) ([]byte, error) {
	return append(encoding.AppendDescriptor(dst, codeAccepted), encoding.CodeList0), nil
}

// AppendBody implements DeliveryState.
func (*Released) AppendBody(dst []byte) ([]byte, error) {
	return append(encoding.AppendDescriptor(dst, codeReleased), encoding.CodeList0), nil
}

// AppendBody implements DeliveryState.
func (s *Rejected) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeRejected)
	f.composite(s.Error, s.Error != nil)
	return f.end()
}

// AppendBody implements DeliveryState.
func (s *Modified) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeModified)
	f.bool(s.DeliveryFailed)
	f.bool(s.UndeliverableHere)
	f.symMap(s.MessageAnnotations)
	return f.end()
}

// AppendBody implements DeliveryState.
func (s *Received) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeReceived)
	f.uint(s.SectionNumber)
	f.ulong(s.SectionOffset)
	return f.end()
}

// readState reads a delivery state or outcome.
func readState(r *encoding.Reader) DeliveryState {
	code := r.Descriptor()
	if r.Err() != nil {
		return nil
	}
	switch code {
	case codeAccepted:
		listFields(r, func(int) { r.Skip() })
		return &Accepted{}
	case codeReleased:
		listFields(r, func(int) { r.Skip() })
		return &Released{}
	case codeRejected:
		s := new(Rejected)
		listFields(r, func(i int) {
			if i == 0 {
				s.Error = readError(r)
			} else {
				r.Skip()
			}
		})
		return s
	case codeModified:
		s := new(Modified)
		listFields(r, func(i int) {
			switch i {
			case 0:
				s.DeliveryFailed = r.Bool()
			case 1:
				s.UndeliverableHere = r.Bool()
			case 2:
				s.MessageAnnotations = readSymMap(r)
			default:
				r.Skip()
			}
		})
		return s
	case codeReceived:
		s := new(Received)
		seen := listFields(r, func(i int) {
			switch i {
			case 0:
				s.SectionNumber = r.Uint()
			case 1:
				s.SectionOffset = r.Ulong()
			default:
				r.Skip()
			}
		})
		if seen&0b11 != 0b11 && r.Err() == nil {
			r.Fail(decodeErr("received: mandatory field missing"))
		}
		return s
	}
	r.Fail(decodeErr("unknown delivery state descriptor 0x%x (transactions are not supported)", code))
	return nil
}
