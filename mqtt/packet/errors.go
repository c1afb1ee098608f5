package packet

// Error is what every decoder returns (as *Error).
type Error struct {
	Code   ReasonCode
	Reason string
}

func (e *Error) Error() string { return e.Reason }

var errNotImplemented = &Error{Code: ImplementationSpecificError, Reason: "not implemented"}
