package amqp

import (
	"errors"
	"fmt"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// Error is an AMQP error: a condition, a description and optional info.
// Return one from a Handler to refuse a link with that condition.
type Error = frame.Error

// ErrClosed is wrapped by errors that report a local close.
var ErrClosed = errors.New("amqp: closed")

// ErrAuth is wrapped by the error of Dial when the server refused the SASL
// login (a sasl-outcome other than ok).
var ErrAuth = errors.New("amqp: authentication failed")

// ErrLimit is wrapped by the errors of NewSession, NewSender and
// NewReceiver when the connection has reached a limit: MaxSessions,
// MaxLinks, or every channel or link handle the peer accepts in use.
var ErrLimit = errors.New("amqp: limit reached")

// ConnError reports that a connection ended. RemoteErr is the condition
// the peer sent with its close, if any; otherwise the error says what
// ended the connection locally (a protocol violation by the peer, an I/O
// error, Close).
type ConnError struct {
	RemoteErr *Error
	inner     error
}

func (e *ConnError) Error() string {
	switch {
	case e.RemoteErr != nil:
		return "amqp: connection closed by peer: " + e.RemoteErr.Error()
	case e.inner != nil:
		return "amqp: connection closed: " + e.inner.Error()
	}
	return "amqp: connection closed"
}

func (e *ConnError) Unwrap() error {
	if e.RemoteErr != nil {
		return e.RemoteErr
	}
	return e.inner
}

// SessionError reports that a session ended while the connection lives on.
type SessionError struct {
	RemoteErr *Error
	inner     error
}

func (e *SessionError) Error() string {
	switch {
	case e.RemoteErr != nil:
		return "amqp: session ended by peer: " + e.RemoteErr.Error()
	case e.inner != nil:
		return "amqp: session ended: " + e.inner.Error()
	}
	return "amqp: session ended"
}

func (e *SessionError) Unwrap() error {
	if e.RemoteErr != nil {
		return e.RemoteErr
	}
	return e.inner
}

// LinkError reports that a link was detached: by the peer (RemoteErr set
// when it gave a condition, for example when it refused the attach), or
// locally.
type LinkError struct {
	RemoteErr *Error
	// Closed reports that the peer's detach closed the link (closed=true)
	// rather than suspending it.
	Closed bool
	inner  error
}

func (e *LinkError) Error() string {
	switch {
	case e.RemoteErr != nil:
		return "amqp: link detached by peer: " + e.RemoteErr.Error()
	case e.inner != nil:
		return "amqp: link detached: " + e.inner.Error()
	}
	return "amqp: link detached"
}

func (e *LinkError) Unwrap() error {
	if e.RemoteErr != nil {
		return e.RemoteErr
	}
	return e.inner
}

// EndedCleanly reports whether err, the Err of a Sender, Receiver,
// Session or Conn, says that the peer ended it on purpose and without an
// error condition: a detach with closed=true, or an end or close without
// error (which end the session's or connection's links with that error).
// It is false for a detach that only suspends the link (closed=false), for
// any condition the peer sent, and for every end that was not the peer's
// decision: a lost socket, an idle time-out, a protocol violation, a local
// Close. Services that act on how a peer left (a last will, say) need to
// tell these apart.
func EndedCleanly(err error) bool {
	switch e := err.(type) {
	case *LinkError:
		return e.RemoteErr == nil && e.inner == nil && e.Closed
	case *SessionError:
		return e.RemoteErr == nil && e.inner == nil
	case *ConnError:
		return e.RemoteErr == nil && e.inner == nil
	}
	return false
}

// protoError is a violation by the peer, carrying the condition we send
// back when we close the connection, end the session or detach the link.
type protoError struct {
	cond frame.Condition
	desc string
}

func (e *protoError) Error() string { return fmt.Sprintf("%s: %s", e.cond, e.desc) }

func (e *protoError) amqpError() *Error {
	return &Error{Condition: e.cond, Description: e.desc}
}

func violation(cond frame.Condition, format string, args ...any) *protoError {
	return &protoError{cond: cond, desc: fmt.Sprintf(format, args...)}
}

// sessionViolation ends the session, not the connection.
type sessionViolation struct{ *protoError }

// linkViolation detaches the link, not the session.
type linkViolation struct {
	*protoError
	l *link
}

// asError turns what a Handler returned into the condition sent with the
// refusal: an *Error as is, anything else as amqp:internal-error.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Condition: frame.CondInternalError, Description: err.Error()}
}

var errDupName = errors.New("amqp: a link with this name is already attaching")

// OutcomeError reports that the receiver did not accept a message: the
// State is *frame.Rejected, *frame.Released or *frame.Modified.
type OutcomeError struct {
	State frame.DeliveryState
}

func (e *OutcomeError) Error() string {
	switch s := e.State.(type) {
	case *frame.Rejected:
		if s.Error != nil {
			return "amqp: message rejected: " + s.Error.Error()
		}
		return "amqp: message rejected"
	case *frame.Released:
		return "amqp: message released"
	case *frame.Modified:
		return "amqp: message modified"
	}
	return "amqp: message not accepted"
}

// Conditions a server commonly refuses links and deliveries with, so
// that users of this package need not import the codec.
const (
	CondNotFound              = frame.CondNotFound
	CondUnauthorizedAccess    = frame.CondUnauthorizedAccess
	CondResourceLimitExceeded = frame.CondResourceLimitExceeded
	CondNotAllowed            = frame.CondNotAllowed
	CondInvalidField          = frame.CondInvalidField
	CondInternalError         = frame.CondInternalError
	CondDecodeError           = frame.CondDecodeError
	CondPreconditionFailed    = frame.CondPreconditionFailed
	CondDetachForced          = frame.CondDetachForced
	CondNotImplemented        = frame.CondNotImplemented
	CondConnectionForced      = frame.CondConnectionForced
)

// Integer is any AMQP integer value as an int64 (see frame.Integer), for
// annotations, properties and filters whose integer type varies by client.
func Integer(v any) (int64, bool) { return frame.Integer(v) }

// Message sections and delivery states, re-exported from the codec.
type (
	Properties    = frame.Properties
	MessageHeader = frame.MessageHeader
	Annotations   = frame.Annotations
	Accepted      = frame.Accepted
	Rejected      = frame.Rejected
	Released      = frame.Released
	Modified      = frame.Modified
	Source        = frame.Source
	Target        = frame.Target
	Attach        = frame.Attach
	Open          = frame.Open

	SenderSettleMode   = frame.SenderSettleMode
	ReceiverSettleMode = frame.ReceiverSettleMode
)

// Terminus durabilities and expiry policies (part 3, sections 3.5.5 and
// 3.5.6).
const (
	DurabilityNone          = frame.DurabilityNone
	DurabilityConfiguration = frame.DurabilityConfiguration
	DurabilityUnsettled     = frame.DurabilityUnsettled
	ExpiryLinkDetach        = frame.ExpiryLinkDetach
	ExpirySessionEnd        = frame.ExpirySessionEnd
	ExpiryConnectionClose   = frame.ExpiryConnectionClose
	ExpiryNever             = frame.ExpiryNever
)

// Settle modes (part 2, sections 2.8.2 and 2.8.3).
const (
	SenderSettleUnsettled = frame.SenderSettleUnsettled
	SenderSettleSettled   = frame.SenderSettleSettled
	SenderSettleMixed     = frame.SenderSettleMixed
	ReceiverSettleFirst   = frame.ReceiverSettleFirst
	ReceiverSettleSecond  = frame.ReceiverSettleSecond
)
