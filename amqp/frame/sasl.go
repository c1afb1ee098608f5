package frame

import (
	"github.com/ferry-iot/ferry/amqp/encoding"
)

// SASL mechanism names (part 5, section 5.3; RFC 4616, 4505, 4422).
const (
	SASLAnonymous encoding.Symbol = "ANONYMOUS"
	SASLPlain     encoding.Symbol = "PLAIN"
	SASLExternal  encoding.Symbol = "EXTERNAL"
)

// SASLCode is the outcome of a SASL exchange (part 5, section 5.3.3.6).
type SASLCode uint8

const (
	SASLOK      SASLCode = 0 // authentication succeeded
	SASLAuth    SASLCode = 1 // bad credentials
	SASLSys     SASLCode = 2 // system error
	SASLSysPerm SASLCode = 3 // unrecoverable system error
	SASLSysTemp SASLCode = 4 // transient system error
)

// SASLMechanisms advertises the server's mechanisms (5.3.3.1).
//
//	<type name="sasl-mechanisms" class="composite" source="list" provides="sasl-frame">
//	    <descriptor name="amqp:sasl-mechanisms:list" code="0x00000000:0x00000040"/>
//	    <field name="sasl-server-mechanisms" type="symbol" multiple="true" mandatory="true"/>
//	</type>
type SASLMechanisms struct {
	Mechanisms []encoding.Symbol
}

// SASLInit selects a mechanism (5.3.3.2).
//
//	<type name="sasl-init" class="composite" source="list" provides="sasl-frame">
//	    <descriptor name="amqp:sasl-init:list" code="0x00000000:0x00000041"/>
//	    <field name="mechanism" type="symbol" mandatory="true"/>
//	    <field name="initial-response" type="binary"/>
//	    <field name="hostname" type="string"/>
//	</type>
type SASLInit struct {
	Mechanism       encoding.Symbol
	InitialResponse []byte
	Hostname        string
}

// SASLChallenge carries a server challenge (5.3.3.3).
//
//	<type name="sasl-challenge" class="composite" source="list" provides="sasl-frame">
//	    <descriptor name="amqp:sasl-challenge:list" code="0x00000000:0x00000042"/>
//	    <field name="challenge" type="binary" mandatory="true"/>
//	</type>
type SASLChallenge struct {
	Challenge []byte
}

// SASLResponse carries a client response (5.3.3.4).
//
//	<type name="sasl-response" class="composite" source="list" provides="sasl-frame">
//	    <descriptor name="amqp:sasl-response:list" code="0x00000000:0x00000043"/>
//	    <field name="response" type="binary" mandatory="true"/>
//	</type>
type SASLResponse struct {
	Response []byte
}

// SASLOutcome ends the SASL exchange (5.3.3.5).
//
//	<type name="sasl-outcome" class="composite" source="list" provides="sasl-frame">
//	    <descriptor name="amqp:sasl-outcome:list" code="0x00000000:0x00000044"/>
//	    <field name="code" type="sasl-code" mandatory="true"/>
//	    <field name="additional-data" type="binary"/>
//	</type>
type SASLOutcome struct {
	Code           SASLCode
	AdditionalData []byte
}

func (*SASLMechanisms) body() {}
func (*SASLInit) body()       {}
func (*SASLChallenge) body()  {}
func (*SASLResponse) body()   {}
func (*SASLOutcome) body()    {}

// AppendBody implements Body.
func (s *SASLMechanisms) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeMechanisms)
	// Mandatory: an empty list is an empty array, not null.
	if len(s.Mechanisms) == 0 {
		var a encoding.ArrayBuilder
		f.dst, a = encoding.StartArray(f.dst, encoding.CodeSym8)
		f.dst = a.End(f.dst, 0)
	} else {
		f.dst = encoding.AppendSymbolArray(f.dst, s.Mechanisms)
	}
	f.mark()
	return f.end()
}

func (s *SASLMechanisms) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		if i == 0 {
			s.Mechanisms = r.Symbols()
		} else {
			r.Skip()
		}
	})
	return requireFields(r, "sasl-mechanisms", seen, 1)
}

// AppendBody implements Body.
func (s *SASLInit) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeInit)
	f.dst = encoding.AppendSymbol(f.dst, s.Mechanism)
	f.mark()
	f.binary(s.InitialResponse)
	f.str(s.Hostname)
	return f.end()
}

func (s *SASLInit) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			s.Mechanism = r.Symbol()
		case 1:
			s.InitialResponse = r.Binary()
		case 2:
			s.Hostname = r.String()
		default:
			r.Skip()
		}
	})
	return requireFields(r, "sasl-init", seen, 1)
}

// AppendBody implements Body.
func (s *SASLChallenge) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeChallenge)
	f.dst = encoding.AppendBinary(f.dst, s.Challenge)
	f.mark()
	return f.end()
}

func (s *SASLChallenge) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		if i == 0 {
			s.Challenge = r.Binary()
		} else {
			r.Skip()
		}
	})
	return requireFields(r, "sasl-challenge", seen, 1)
}

// AppendBody implements Body.
func (s *SASLResponse) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeResponse)
	f.dst = encoding.AppendBinary(f.dst, s.Response)
	f.mark()
	return f.end()
}

func (s *SASLResponse) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		if i == 0 {
			s.Response = r.Binary()
		} else {
			r.Skip()
		}
	})
	return requireFields(r, "sasl-response", seen, 1)
}

// AppendBody implements Body.
func (s *SASLOutcome) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeOutcome)
	f.ubyte(uint8(s.Code))
	f.binary(s.AdditionalData)
	return f.end()
}

func (s *SASLOutcome) decode(r *encoding.Reader) error {
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			s.Code = SASLCode(r.Ubyte())
		case 1:
			s.AdditionalData = r.Binary()
		default:
			r.Skip()
		}
	})
	return requireFields(r, "sasl-outcome", seen, 1)
}
