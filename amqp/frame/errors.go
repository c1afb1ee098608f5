package frame

import (
	"fmt"

	"github.com/ferry-iot/ferry/amqp/encoding"
)

// Condition is an error condition symbol (part 2, section 2.8.15 to 2.8.18).
type Condition = encoding.Symbol

// AMQP error conditions.
const (
	// Generic (2.8.15).
	CondInternalError         Condition = "amqp:internal-error"
	CondNotFound              Condition = "amqp:not-found"
	CondUnauthorizedAccess    Condition = "amqp:unauthorized-access"
	CondDecodeError           Condition = "amqp:decode-error"
	CondResourceLimitExceeded Condition = "amqp:resource-limit-exceeded"
	CondNotAllowed            Condition = "amqp:not-allowed"
	CondInvalidField          Condition = "amqp:invalid-field"
	CondNotImplemented        Condition = "amqp:not-implemented"
	CondResourceLocked        Condition = "amqp:resource-locked"
	CondPreconditionFailed    Condition = "amqp:precondition-failed"
	CondResourceDeleted       Condition = "amqp:resource-deleted"
	CondIllegalState          Condition = "amqp:illegal-state"
	CondFrameSizeTooSmall     Condition = "amqp:frame-size-too-small"

	// Connection (2.8.16).
	CondConnectionForced Condition = "amqp:connection:forced"
	CondFramingError     Condition = "amqp:connection:framing-error"
	CondRedirect         Condition = "amqp:connection:redirect"

	// Session (2.8.17).
	CondWindowViolation  Condition = "amqp:session:window-violation"
	CondErrantLink       Condition = "amqp:session:errant-link"
	CondHandleInUse      Condition = "amqp:session:handle-in-use"
	CondUnattachedHandle Condition = "amqp:session:unattached-handle"

	// Link (2.8.18).
	CondDetachForced          Condition = "amqp:link:detach-forced"
	CondTransferLimitExceeded Condition = "amqp:link:transfer-limit-exceeded"
	CondMessageSizeExceeded   Condition = "amqp:link:message-size-exceeded"
	CondLinkRedirect          Condition = "amqp:link:redirect"
	CondStolen                Condition = "amqp:link:stolen"
)

// Error is the AMQP error type carried by close, end, detach and the
// rejected outcome (part 2, section 2.8.14).
//
//	<type name="error" class="composite" source="list">
//	    <descriptor name="amqp:error:list" code="0x00000000:0x0000001d"/>
//	    <field name="condition" type="symbol" requires="error-condition" mandatory="true"/>
//	    <field name="description" type="string"/>
//	    <field name="info" type="fields"/>
//	</type>
type Error struct {
	Condition   Condition
	Description string
	Info        map[encoding.Symbol]any
}

// Error implements error.
func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return fmt.Sprintf("%s: %s", e.Condition, e.Description)
}

// AppendBody encodes e as a described list.
func (e *Error) AppendBody(dst []byte) ([]byte, error) {
	f := startFields(dst, codeError)
	f.dst = encoding.AppendSymbol(f.dst, e.Condition)
	f.mark()
	f.str(e.Description)
	f.symMap(e.Info)
	return f.end()
}

func readError(r *encoding.Reader) *Error {
	if code := r.Descriptor(); code != codeError && r.Err() == nil {
		r.Fail(decodeErr("want error, got descriptor 0x%x", code))
		return nil
	}
	e := new(Error)
	seen := listFields(r, func(i int) {
		switch i {
		case 0:
			e.Condition = r.Symbol()
		case 1:
			e.Description = r.String()
		case 2:
			e.Info = readSymMap(r)
		default:
			r.Skip()
		}
	})
	if seen&1 == 0 && r.Err() == nil {
		r.Fail(decodeErr("error without condition"))
	}
	return e
}
