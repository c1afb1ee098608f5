package registry

import (
	"crypto/rand"
	"fmt"
	"regexp"
)

// ID syntax as in Hono's device registry defaults
// (HONO_REGISTRY_HTTP_TENANTIDPATTERN and ..._DEVICEIDPATTERN). Neither
// allows '/' or '@', which the store keys and the `auth-id@tenant` login
// syntax rely on.
var (
	tenantIDPattern = regexp.MustCompile(`^[a-zA-Z0-9\-_.]+$`)
	deviceIDPattern = regexp.MustCompile(`^[a-zA-Z0-9\-_.:=]+$`)
	// credentialTypePattern keeps the type usable as a key component.
	credentialTypePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9\-_.]*$`)
)

const (
	maxIDLen     = 256
	maxAuthIDLen = 1024
)

// ValidTenantID reports whether id is a valid tenant identifier.
func ValidTenantID(id string) bool {
	return len(id) <= maxIDLen && tenantIDPattern.MatchString(id)
}

// ValidDeviceID reports whether id is a valid device (or gateway group)
// identifier.
func ValidDeviceID(id string) bool {
	return len(id) <= maxIDLen && deviceIDPattern.MatchString(id)
}

func checkTenantID(id string) error {
	if !ValidTenantID(id) {
		return invalidf("tenant id %q: must match %s, at most %d characters", id, tenantIDPattern, maxIDLen)
	}
	return nil
}

func checkDeviceID(id string) error {
	if !ValidDeviceID(id) {
		return invalidf("device id %q: must match %s, at most %d characters", id, deviceIDPattern, maxIDLen)
	}
	return nil
}

// newID returns a random (version 4) UUID, as Hono generates for ids and
// resource versions.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
