package frame

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/amqp/encoding"
)

// Section descriptors of the message format (part 3, section 3.2).
const (
	codeHeader                uint64 = 0x70
	codeDeliveryAnnotations   uint64 = 0x71
	codeMessageAnnotations    uint64 = 0x72
	codeProperties            uint64 = 0x73
	codeApplicationProperties uint64 = 0x74
	codeData                  uint64 = 0x75
	codeAMQPSequence          uint64 = 0x76
	codeAMQPValue             uint64 = 0x77
	codeFooter                uint64 = 0x78
)

// Annotations map symbol (or, reserved, ulong) keys to values: delivery
// annotations, message annotations and the footer.
type Annotations map[any]any

// Get looks key up as a symbol, the spec's type for annotation keys, or
// as a string, which lax clients send.
func (a Annotations) Get(key encoding.Symbol) (any, bool) {
	if v, ok := a[key]; ok {
		return v, true
	}
	v, ok := a[string(key)]
	return v, ok
}

// Integer is any AMQP integer value as an int64 (and a Go int, which a
// message built in Go may hold); false for other types and ulongs past
// int64.
func Integer(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		if n > 1<<63-1 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

// Message is an AMQP message (part 3, section 3.2): the optional sections
// in wire order, then the body, which is one of Data, Sequence or Value.
type Message struct {
	Header                *MessageHeader
	DeliveryAnnotations   Annotations
	MessageAnnotations    Annotations
	Properties            *Properties
	ApplicationProperties map[string]any

	// The body: data sections, amqp-sequence sections, or one amqp-value.
	Data     [][]byte
	Sequence [][]any
	Value    any

	Footer Annotations
}

// MessageHeader is the header section (3.2.1).
//
//	<type name="header" class="composite" source="list" provides="section">
//	    <descriptor name="amqp:header:list" code="0x00000000:0x00000070"/>
//	    <field name="durable" type="boolean" default="false"/>
//	    <field name="priority" type="ubyte" default="4"/>
//	    <field name="ttl" type="milliseconds"/>
//	    <field name="first-acquirer" type="boolean" default="false"/>
//	    <field name="delivery-count" type="uint" default="0"/>
//	</type>
type MessageHeader struct {
	Durable bool
	// Priority defaults to 4 on decode. The zero value encodes priority 0,
	// so set 4 explicitly for normal priority.
	Priority      uint8
	TTL           time.Duration // 0: none; sent in milliseconds
	FirstAcquirer bool
	DeliveryCount uint32
}

// Properties is the properties section (3.2.4).
//
//	<type name="properties" class="composite" source="list" provides="section">
//	    <descriptor name="amqp:properties:list" code="0x00000000:0x00000073"/>
//	    <field name="message-id" type="*" requires="message-id"/>
//	    <field name="user-id" type="binary"/>
//	    <field name="to" type="*" requires="address"/>
//	    <field name="subject" type="string"/>
//	    <field name="reply-to" type="*" requires="address"/>
//	    <field name="correlation-id" type="*" requires="message-id"/>
//	    <field name="content-type" type="symbol"/>
//	    <field name="content-encoding" type="symbol"/>
//	    <field name="absolute-expiry-time" type="timestamp"/>
//	    <field name="creation-time" type="timestamp"/>
//	    <field name="group-id" type="string"/>
//	    <field name="group-sequence" type="sequence-no"/>
//	    <field name="reply-to-group-id" type="string"/>
//	</type>
type Properties struct {
	MessageID          any // uint64, encoding.UUID, []byte or string
	UserID             []byte
	To                 string
	Subject            string
	ReplyTo            string
	CorrelationID      any // uint64, encoding.UUID, []byte or string
	ContentType        encoding.Symbol
	ContentEncoding    encoding.Symbol
	AbsoluteExpiryTime time.Time // zero: absent
	CreationTime       time.Time // zero: absent
	GroupID            string
	GroupSequence      *uint32
	ReplyToGroupID     string
}

// AppendTo appends the encoded message.
func (m *Message) AppendTo(dst []byte) ([]byte, error) {
	var err error
	if h := m.Header; h != nil {
		f := startFields(dst, codeHeader)
		f.bool(h.Durable)
		f.ubyte(h.Priority)
		f.uintDef(uint32(h.TTL/time.Millisecond), 0)
		f.bool(h.FirstAcquirer)
		f.uintDef(h.DeliveryCount, 0)
		if dst, err = f.end(); err != nil {
			return dst, err
		}
	}
	if dst, err = appendAnnotations(dst, codeDeliveryAnnotations, m.DeliveryAnnotations); err != nil {
		return dst, err
	}
	if dst, err = appendAnnotations(dst, codeMessageAnnotations, m.MessageAnnotations); err != nil {
		return dst, err
	}
	if p := m.Properties; p != nil {
		f := startFields(dst, codeProperties)
		f.value(p.MessageID)
		f.binary(p.UserID)
		f.str(p.To)
		f.str(p.Subject)
		f.str(p.ReplyTo)
		f.value(p.CorrelationID)
		f.sym(p.ContentType)
		f.sym(p.ContentEncoding)
		f.timestamp(p.AbsoluteExpiryTime)
		f.timestamp(p.CreationTime)
		f.str(p.GroupID)
		f.optUint(p.GroupSequence)
		f.str(p.ReplyToGroupID)
		if dst, err = f.end(); err != nil {
			return dst, err
		}
	}
	if m.ApplicationProperties != nil {
		if dst, err = encoding.AppendValue(encoding.AppendDescriptor(dst, codeApplicationProperties), m.ApplicationProperties); err != nil {
			return dst, err
		}
	}
	switch {
	case len(m.Data) > 0:
		for _, d := range m.Data {
			dst = encoding.AppendBinary(encoding.AppendDescriptor(dst, codeData), d)
		}
	case len(m.Sequence) > 0:
		for _, s := range m.Sequence {
			if dst, err = encoding.AppendValue(encoding.AppendDescriptor(dst, codeAMQPSequence), s); err != nil {
				return dst, err
			}
		}
	case m.Value != nil:
		if dst, err = encoding.AppendValue(encoding.AppendDescriptor(dst, codeAMQPValue), m.Value); err != nil {
			return dst, err
		}
	}
	return appendAnnotations(dst, codeFooter, m.Footer)
}

func (f *fields) timestamp(t time.Time) {
	if t.IsZero() {
		f.null()
		return
	}
	f.dst = encoding.AppendTimestamp(f.dst, t)
	f.mark()
}

func appendAnnotations(dst []byte, code uint64, a Annotations) ([]byte, error) {
	if a == nil {
		return dst, nil
	}
	return encoding.AppendValue(encoding.AppendDescriptor(dst, code), map[any]any(a))
}

// ErrMessage is wrapped by message decoding errors.
var ErrMessage = errors.New("amqp: malformed message")

// Decode decodes an encoded message into m, which it resets first. It
// copies b, so m does not alias it.
func (m *Message) Decode(b []byte) error {
	*m = Message{}
	r := encoding.NewReader(bytes.Clone(b))
	var last uint64
	for r.Len() > 0 && r.Err() == nil {
		code := r.Descriptor()
		if r.Err() != nil {
			break
		}
		// [part 3, 3.2] sections come in a fixed order; only body
		// sections of one kind repeat.
		repeat := code == last && (code == codeData || code == codeAMQPSequence)
		if code < codeHeader || code > codeFooter || (code <= last && !repeat) ||
			(last >= codeData && last <= codeAMQPValue && code >= codeData && code <= codeAMQPValue && !repeat) {
			return fmt.Errorf("%w: section 0x%x after 0x%x", ErrMessage, code, last)
		}
		last = code
		m.decodeSection(r, code)
	}
	if r.Err() != nil {
		return fmt.Errorf("%w: %w", ErrMessage, r.Err())
	}
	return nil
}

func (m *Message) decodeSection(r *encoding.Reader, code uint64) {
	switch code {
	case codeHeader:
		h := &MessageHeader{Priority: 4}
		listFields(r, func(i int) {
			switch i {
			case 0:
				h.Durable = r.Bool()
			case 1:
				h.Priority = r.Ubyte()
			case 2:
				h.TTL = time.Duration(r.Uint()) * time.Millisecond
			case 3:
				h.FirstAcquirer = r.Bool()
			case 4:
				h.DeliveryCount = r.Uint()
			default:
				r.Skip()
			}
		})
		m.Header = h
	case codeDeliveryAnnotations:
		m.DeliveryAnnotations = readAnnotations(r)
	case codeMessageAnnotations:
		m.MessageAnnotations = readAnnotations(r)
	case codeProperties:
		p := new(Properties)
		listFields(r, func(i int) {
			switch i {
			case 0:
				p.MessageID = readMessageID(r)
			case 1:
				p.UserID = r.Binary()
			case 2:
				p.To = readAddress(r)
			case 3:
				p.Subject = r.String()
			case 4:
				p.ReplyTo = readAddress(r)
			case 5:
				p.CorrelationID = readMessageID(r)
			case 6:
				p.ContentType = r.Symbol()
			case 7:
				p.ContentEncoding = r.Symbol()
			case 8:
				p.AbsoluteExpiryTime = r.Timestamp()
			case 9:
				p.CreationTime = r.Timestamp()
			case 10:
				p.GroupID = r.String()
			case 11:
				p.GroupSequence = optUint(r.Uint())
			case 12:
				p.ReplyToGroupID = r.String()
			default:
				r.Skip()
			}
		})
		m.Properties = p
	case codeApplicationProperties:
		if r.Null() {
			return
		}
		pairs, rest := r.MapStart()
		ap := make(map[string]any, pairs)
		for range pairs {
			k := r.String()
			ap[k] = r.Value()
		}
		r.End(rest)
		m.ApplicationProperties = ap
	case codeData:
		m.Data = append(m.Data, r.Binary())
	case codeAMQPSequence:
		l, ok := r.Value().([]any)
		if !ok && r.Err() == nil {
			r.Fail(fmt.Errorf("%w: amqp-sequence is not a list", ErrMessage))
		}
		m.Sequence = append(m.Sequence, l)
	case codeAMQPValue:
		m.Value = r.Value()
	case codeFooter:
		m.Footer = readAnnotations(r)
	}
}

// readMessageID reads a message-id: ulong, uuid, binary or string.
func readMessageID(r *encoding.Reader) any {
	switch v := r.Value().(type) {
	case uint64, encoding.UUID, []byte, string:
		return v
	case nil:
		return nil
	default:
		r.Fail(fmt.Errorf("%w: message-id of type %T", ErrMessage, v))
		return nil
	}
}

// readAnnotations reads an annotations map, whose keys must be symbols or
// ulongs.
func readAnnotations(r *encoding.Reader) Annotations {
	if r.Null() {
		return nil
	}
	pairs, rest := r.MapStart()
	a := make(Annotations, pairs)
	for range pairs {
		var k any
		switch r.Peek() {
		case encoding.CodeSym8, encoding.CodeSym32:
			k = r.Symbol()
		default:
			k = r.Ulong()
		}
		a[k] = r.Value()
	}
	r.End(rest)
	return a
}
