package packet

import "fmt"

// Error is what every decoder returns (as *Error), and what encoders return
// when a packet cannot be put on the wire. Code is the reason code to send:
// CONNACK for CONNECT, DISCONNECT otherwise; in 3.1.1 the server just closes
// the connection, except for the CONNECT failures that have a CONNACK return
// code (see ConnackReturnCodeV3).
type Error struct {
	Code   ReasonCode
	Reason string

	// Version is set by the CONNECT decoder only, when a CONNACK should
	// report the failure: the protocol version to encode it in. For an
	// unsupported protocol level it is V311, since a 3.1.1 CONNACK with
	// return code 1 is what clients of every version understand
	// [MQTT-3.1.2-2]. 0 means close the connection without a CONNACK: the
	// packet broke before its protocol level, or it is 3.1/3.1.1, where a
	// non-conforming CONNECT is closed without one (3.1.1 [MQTT-3.1.4-1])
	// except for a rejected client identifier (return code 2,
	// 3.1.1 [MQTT-3.1.3-8]).
	Version Version
}

func (e *Error) Error() string {
	return "mqtt packet: " + e.Code.String() + ": " + e.Reason
}

// Is makes errors.Is(err, &Error{Code: c}) match any *Error with code c.
// A target with a Reason matches only an identical error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// errorf builds an *Error. It is only called on failure paths, so the
// formatting cost never reaches the hot path.
func errorf(code ReasonCode, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// asError converts a possibly nil *Error to an error without producing a
// non-nil interface holding a nil pointer.
func asError(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// checkVersion rejects versions this package does not speak.
func checkVersion(v Version) *Error {
	switch v {
	case V31, V311, V5:
		return nil
	}
	return errorf(ImplementationSpecificError, "unsupported protocol version %d", v)
}
