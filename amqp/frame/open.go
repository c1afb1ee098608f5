package frame

import (
	"math"
	"time"

	"github.com/ferry-iot/ferry/amqp/encoding"
)

// Open negotiates connection parameters (part 2, section 2.7.1).
//
//	<type name="open" class="composite" source="list" provides="frame">
//	    <descriptor name="amqp:open:list" code="0x00000000:0x00000010"/>
//	    <field name="container-id" type="string" mandatory="true"/>
//	    <field name="hostname" type="string"/>
//	    <field name="max-frame-size" type="uint" default="4294967295"/>
//	    <field name="channel-max" type="ushort" default="65535"/>
//	    <field name="idle-time-out" type="milliseconds"/>
//	    <field name="outgoing-locales" type="ietf-language-tag" multiple="true"/>
//	    <field name="incoming-locales" type="ietf-language-tag" multiple="true"/>
//	    <field name="offered-capabilities" type="symbol" multiple="true"/>
//	    <field name="desired-capabilities" type="symbol" multiple="true"/>
//	    <field name="properties" type="fields"/>
//	</type>
type Open struct {
	ContainerID         string
	Hostname            string
	MaxFrameSize        uint32        // default math.MaxUint32
	ChannelMax          uint16        // default math.MaxUint16
	IdleTimeout         time.Duration // 0: none; sent in milliseconds
	OutgoingLocales     []encoding.Symbol
	IncomingLocales     []encoding.Symbol
	OfferedCapabilities []encoding.Symbol
	DesiredCapabilities []encoding.Symbol
	Properties          map[encoding.Symbol]any
}

func (*Open) body() {}

// AppendBody implements Body.
func (o *Open) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeOpen)
	f.strAlways(o.ContainerID)
	f.str(o.Hostname)
	f.uintDef(o.MaxFrameSize, math.MaxUint32)
	if o.ChannelMax == math.MaxUint16 {
		f.null()
	} else {
		f.ushort(o.ChannelMax)
	}
	f.uintDef(uint32(o.IdleTimeout/time.Millisecond), 0)
	f.symbols(o.OutgoingLocales)
	f.symbols(o.IncomingLocales)
	f.symbols(o.OfferedCapabilities)
	f.symbols(o.DesiredCapabilities)
	f.symMap(o.Properties)
	return f.end()
}

func (o *Open) decode(r *encoding.Reader) error {
	o.MaxFrameSize = math.MaxUint32
	o.ChannelMax = math.MaxUint16
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			o.ContainerID = r.String()
		case 1:
			o.Hostname = r.String()
		case 2:
			o.MaxFrameSize = r.Uint()
		case 3:
			o.ChannelMax = r.Ushort()
		case 4:
			o.IdleTimeout = time.Duration(r.Uint()) * time.Millisecond
		case 5:
			o.OutgoingLocales = r.Symbols()
		case 6:
			o.IncomingLocales = r.Symbols()
		case 7:
			o.OfferedCapabilities = r.Symbols()
		case 8:
			o.DesiredCapabilities = r.Symbols()
		case 9:
			o.Properties = readSymMap(r)
		default:
			r.Skip()
		}
	})
	return requireFields(r, "open", seen, 1)
}

// Close closes the connection (part 2, section 2.7.9).
//
//	<type name="close" class="composite" source="list" provides="frame">
//	    <descriptor name="amqp:close:list" code="0x00000000:0x00000018"/>
//	    <field name="error" type="error"/>
//	</type>
type Close struct {
	Error *Error
}

func (*Close) body() {}

// AppendBody implements Body.
func (c *Close) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeClose)
	f.composite(c.Error, c.Error != nil)
	return f.end()
}

func (c *Close) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		if i == 0 {
			c.Error = readError(r)
		} else {
			r.Skip()
		}
	})
	return requireFields(r, "close", seen, 0)
}

// Begin starts a session on a channel (part 2, section 2.7.2).
//
//	<type name="begin" class="composite" source="list" provides="frame">
//	    <descriptor name="amqp:begin:list" code="0x00000000:0x00000011"/>
//	    <field name="remote-channel" type="ushort"/>
//	    <field name="next-outgoing-id" type="transfer-number" mandatory="true"/>
//	    <field name="incoming-window" type="uint" mandatory="true"/>
//	    <field name="outgoing-window" type="uint" mandatory="true"/>
//	    <field name="handle-max" type="handle" default="4294967295"/>
//	    <field name="offered-capabilities" type="symbol" multiple="true"/>
//	    <field name="desired-capabilities" type="symbol" multiple="true"/>
//	    <field name="properties" type="fields"/>
//	</type>
type Begin struct {
	RemoteChannel       *uint16 // set in the reply to a peer's begin
	NextOutgoingID      uint32
	IncomingWindow      uint32
	OutgoingWindow      uint32
	HandleMax           uint32 // default math.MaxUint32
	OfferedCapabilities []encoding.Symbol
	DesiredCapabilities []encoding.Symbol
	Properties          map[encoding.Symbol]any
}

func (*Begin) body() {}

// AppendBody implements Body.
func (b *Begin) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeBegin)
	if b.RemoteChannel != nil {
		f.ushort(*b.RemoteChannel)
	} else {
		f.null()
	}
	f.uint(b.NextOutgoingID)
	f.uint(b.IncomingWindow)
	f.uint(b.OutgoingWindow)
	f.uintDef(b.HandleMax, math.MaxUint32)
	f.symbols(b.OfferedCapabilities)
	f.symbols(b.DesiredCapabilities)
	f.symMap(b.Properties)
	return f.end()
}

func (b *Begin) decode(r *encoding.Reader) error {
	b.HandleMax = math.MaxUint32
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			ch := r.Ushort()
			b.RemoteChannel = &ch
		case 1:
			b.NextOutgoingID = r.Uint()
		case 2:
			b.IncomingWindow = r.Uint()
		case 3:
			b.OutgoingWindow = r.Uint()
		case 4:
			b.HandleMax = r.Uint()
		case 5:
			b.OfferedCapabilities = r.Symbols()
		case 6:
			b.DesiredCapabilities = r.Symbols()
		case 7:
			b.Properties = readSymMap(r)
		default:
			r.Skip()
		}
	})
	return requireFields(r, "begin", seen, 0b1110)
}

// End ends a session (part 2, section 2.7.8).
//
//	<type name="end" class="composite" source="list" provides="frame">
//	    <descriptor name="amqp:end:list" code="0x00000000:0x00000017"/>
//	    <field name="error" type="error"/>
//	</type>
type End struct {
	Error *Error
}

func (*End) body() {}

// AppendBody implements Body.
func (e *End) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeEnd)
	f.composite(e.Error, e.Error != nil)
	return f.end()
}

func (e *End) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		if i == 0 {
			e.Error = readError(r)
		} else {
			r.Skip()
		}
	})
	return requireFields(r, "end", seen, 0)
}
