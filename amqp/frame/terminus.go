package frame

import (
	"github.com/ferry-iot/ferry/amqp/encoding"
)

// Durability is terminus-durability (part 3, section 3.5.5).
type Durability uint32

const (
	DurabilityNone          Durability = 0
	DurabilityConfiguration Durability = 1
	DurabilityUnsettled     Durability = 2
)

// Expiry policies (part 3, section 3.5.6).
const (
	ExpiryLinkDetach      encoding.Symbol = "link-detach"
	ExpirySessionEnd      encoding.Symbol = "session-end" // the default
	ExpiryConnectionClose encoding.Symbol = "connection-close"
	ExpiryNever           encoding.Symbol = "never"
)

// Distribution modes (part 3, section 3.5.9 "std-dist-mode").
const (
	DistributionMove encoding.Symbol = "move"
	DistributionCopy encoding.Symbol = "copy"
)

// Source is the source terminus of a link (part 3, section 3.5.3).
//
//	<type name="source" class="composite" source="list" provides="source">
//	    <descriptor name="amqp:source:list" code="0x00000000:0x00000028"/>
//	    <field name="address" type="*" requires="address"/>
//	    <field name="durable" type="terminus-durability" default="none"/>
//	    <field name="expiry-policy" type="terminus-expiry-policy" default="session-end"/>
//	    <field name="timeout" type="seconds" default="0"/>
//	    <field name="dynamic" type="boolean" default="false"/>
//	    <field name="dynamic-node-properties" type="node-properties"/>
//	    <field name="distribution-mode" type="symbol" requires="distribution-mode"/>
//	    <field name="filter" type="filter-set"/>
//	    <field name="default-outcome" type="*" requires="outcome"/>
//	    <field name="outcomes" type="symbol" multiple="true"/>
//	    <field name="capabilities" type="symbol" multiple="true"/>
//	</type>
type Source struct {
	Address               string // "": null (a dynamic source before the peer names it)
	Durable               Durability
	ExpiryPolicy          encoding.Symbol // "": session-end
	Timeout               uint32          // seconds
	Dynamic               bool
	DynamicNodeProperties map[encoding.Symbol]any
	DistributionMode      encoding.Symbol
	// Filter maps filter names to filters, usually encoding.Described
	// values such as the apache.org:selector-filter:string.
	Filter         map[encoding.Symbol]any
	DefaultOutcome DeliveryState
	Outcomes       []encoding.Symbol
	Capabilities   []encoding.Symbol
}

// AppendBody encodes s as a described list.
func (s *Source) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeSource)
	f.str(s.Address)
	f.uintDef(uint32(s.Durable), 0)
	f.sym(s.ExpiryPolicy)
	f.uintDef(s.Timeout, 0)
	f.bool(s.Dynamic)
	f.symMap(s.DynamicNodeProperties)
	f.sym(s.DistributionMode)
	f.symMap(s.Filter)
	f.composite(s.DefaultOutcome, s.DefaultOutcome != nil)
	f.symbols(s.Outcomes)
	f.symbols(s.Capabilities)
	return f.end()
}

func readSource(r *encoding.Reader) *Source {
	if code := r.Descriptor(); code != codeSource && r.Err() == nil {
		r.Fail(decodeErr("want source, got descriptor 0x%x", code))
		return nil
	}
	s := new(Source)
	listFields(r, func(i int) {
		switch i {
		case 0:
			s.Address = readAddress(r)
		case 1:
			s.Durable = Durability(r.Uint())
		case 2:
			s.ExpiryPolicy = r.Symbol()
		case 3:
			s.Timeout = r.Uint()
		case 4:
			s.Dynamic = r.Bool()
		case 5:
			s.DynamicNodeProperties = readSymMap(r)
		case 6:
			s.DistributionMode = r.Symbol()
		case 7:
			s.Filter = readSymMap(r)
		case 8:
			s.DefaultOutcome = readState(r)
		case 9:
			s.Outcomes = r.Symbols()
		case 10:
			s.Capabilities = r.Symbols()
		default:
			r.Skip()
		}
	})
	return s
}

// Target is the target terminus of a link (part 3, section 3.5.4). A
// target with an empty Address on a sending link asks for the anonymous
// relay: each message names its destination in Properties.To.
//
//	<type name="target" class="composite" source="list" provides="target">
//	    <descriptor name="amqp:target:list" code="0x00000000:0x00000029"/>
//	    <field name="address" type="*" requires="address"/>
//	    <field name="durable" type="terminus-durability" default="none"/>
//	    <field name="expiry-policy" type="terminus-expiry-policy" default="session-end"/>
//	    <field name="timeout" type="seconds" default="0"/>
//	    <field name="dynamic" type="boolean" default="false"/>
//	    <field name="dynamic-node-properties" type="node-properties"/>
//	    <field name="capabilities" type="symbol" multiple="true"/>
//	</type>
type Target struct {
	Address               string
	Durable               Durability
	ExpiryPolicy          encoding.Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties map[encoding.Symbol]any
	Capabilities          []encoding.Symbol
}

// AppendBody encodes t as a described list.
func (t *Target) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeTarget)
	f.str(t.Address)
	f.uintDef(uint32(t.Durable), 0)
	f.sym(t.ExpiryPolicy)
	f.uintDef(t.Timeout, 0)
	f.bool(t.Dynamic)
	f.symMap(t.DynamicNodeProperties)
	f.symbols(t.Capabilities)
	return f.end()
}

func readTarget(r *encoding.Reader) *Target {
	if code := r.Descriptor(); code != codeTarget && r.Err() == nil {
		r.Fail(decodeErr("want target, got descriptor 0x%x (coordinator targets are not supported)", code))
		return nil
	}
	t := new(Target)
	listFields(r, func(i int) {
		switch i {
		case 0:
			t.Address = readAddress(r)
		case 1:
			t.Durable = Durability(r.Uint())
		case 2:
			t.ExpiryPolicy = r.Symbol()
		case 3:
			t.Timeout = r.Uint()
		case 4:
			t.Dynamic = r.Bool()
		case 5:
			t.DynamicNodeProperties = readSymMap(r)
		case 6:
			t.Capabilities = r.Symbols()
		default:
			r.Skip()
		}
	})
	return t
}
