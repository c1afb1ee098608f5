package registry

import (
	"errors"
	"fmt"
)

// Sentinel errors; the registry wraps them with a message that names the
// record or the rule, so that err.Error() can be shown to an operator.
var (
	// ErrInvalid: the request breaks a validation rule.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: the tenant, device or credential does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the record exists already, or a credential's
	// (type, auth-id) or a trusted CA's subject DN is taken.
	ErrConflict = errors.New("conflict")
	// ErrPrecondition: the expected resource version does not match.
	ErrPrecondition = errors.New("resource version mismatch")
	// ErrLimitExceeded: a tenant's registration limit would be exceeded.
	ErrLimitExceeded = errors.New("registration limit exceeded")
	// ErrBadCredentials: unknown tenant or auth-id, wrong password, or no
	// secret valid now. Deliberately one error, so that a login does not
	// reveal which part was wrong.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrDisabled: the tenant, the device or the credential is disabled.
	ErrDisabled = errors.New("disabled")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func notFoundf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotFound, fmt.Sprintf(format, args...))
}

func conflictf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}
