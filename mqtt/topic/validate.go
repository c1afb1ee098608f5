// Package topic validates MQTT topic names and filters and parses shared
// subscriptions. It imports only the standard library, so the packet codec
// can use it without pulling in any broker code.
package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinel errors, wrapped with context by the functions below; match them with
// errors.Is.
var (
	ErrInvalidName   = errors.New("topic: invalid topic name")
	ErrInvalidFilter = errors.New("topic: invalid topic filter")
	ErrInvalidShare  = errors.New("topic: invalid shared subscription")
)

// MaxLength is the longest topic name or filter: it is sent as an MQTT UTF-8
// string, whose length prefix is 16 bits [MQTT-4.7.3-3].
const MaxLength = 65535

// SharePrefix starts a shared subscription filter: $share/<group>/<filter>.
const SharePrefix = "$share/"

// checkString applies the UTF-8 string rules common to names and filters.
func checkString(s string, sentinel error) error {
	if len(s) == 0 {
		// [MQTT-4.7.3-1] topic names and filters are at least one character.
		return fmt.Errorf("%w: empty", sentinel)
	}
	if len(s) > MaxLength {
		return fmt.Errorf("%w: %d bytes, more than %d", sentinel, len(s), MaxLength)
	}
	// [MQTT-1.5.4-1] well-formed UTF-8 (no surrogates: utf8.ValidString
	// rejects their encodings); [MQTT-1.5.4-2] no U+0000; [MQTT-4.7.3-2].
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: not valid UTF-8", sentinel)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: contains U+0000", sentinel)
	}
	return nil
}

// ValidateName reports whether name is a valid topic name for PUBLISH: non-empty,
// at most 65535 bytes of well-formed UTF-8 without U+0000, and without wildcards.
func ValidateName(name string) error {
	if err := checkString(name, ErrInvalidName); err != nil {
		return err
	}
	// [MQTT-4.7.0-1] [MQTT-3.3.2-2] (3.1.1: [MQTT-4.7.1-1]) no wildcard
	// characters in a topic name.
	if i := strings.IndexAny(name, "+#"); i >= 0 {
		return fmt.Errorf("%w: wildcard %q at byte %d", ErrInvalidName, name[i], i)
	}
	return nil
}

// ValidateFilter reports whether filter is a valid topic filter: the string
// rules of ValidateName, '+' only as a whole level and '#' only as the whole
// last level. A $share/ prefix is not interpreted here; see ParseShared.
func ValidateFilter(filter string) error {
	if err := checkString(filter, ErrInvalidFilter); err != nil {
		return err
	}
	// Walk the levels without allocating (strings.Split would).
	start := 0
	for start <= len(filter) {
		end := strings.IndexByte(filter[start:], '/')
		last := end < 0
		if last {
			end = len(filter)
		} else {
			end += start
		}
		level := filter[start:end]
		if i := strings.IndexAny(level, "+#"); i >= 0 {
			switch {
			case len(level) != 1:
				// [MQTT-4.7.1-1] [MQTT-4.7.1-2] (3.1.1: [MQTT-4.7.1-2]
				// [MQTT-4.7.1-3]) a wildcard occupies a whole level.
				return fmt.Errorf("%w: wildcard %q must be alone in its level %q", ErrInvalidFilter, level[i], level)
			case level == "#" && !last:
				// [MQTT-4.7.1-1] (3.1.1: [MQTT-4.7.1-2]) '#' must be the
				// last character of the filter.
				return fmt.Errorf("%w: '#' must be the last level", ErrInvalidFilter)
			}
		}
		if last {
			break
		}
		start = end + 1
	}
	return nil
}

// ParseShared splits a shared subscription filter "$share/<group>/<filter>".
// When filter does not start with "$share/", it returns shared == false,
// inner == filter and the result of ValidateFilter(filter). Otherwise the group
// must be non-empty and free of '+', '#' and '/', and inner must be a valid
// filter [MQTT-4.8.2-1] [MQTT-4.8.2-2].
func ParseShared(filter string) (group, inner string, shared bool, err error) {
	if !strings.HasPrefix(filter, SharePrefix) {
		return "", filter, false, ValidateFilter(filter)
	}
	if err := checkString(filter, ErrInvalidShare); err != nil {
		return "", "", true, err
	}
	rest := filter[len(SharePrefix):]
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return "", "", true, fmt.Errorf("%w: %q has no filter after the group", ErrInvalidShare, filter)
	}
	group, inner = rest[:slash], rest[slash+1:]
	if group == "" {
		// [MQTT-4.8.2-1] the ShareName is at least one character long.
		return "", "", true, fmt.Errorf("%w: empty group in %q", ErrInvalidShare, filter)
	}
	if i := strings.IndexAny(group, "+#"); i >= 0 {
		// [MQTT-4.8.2-2] the ShareName must not contain '/', '+' or '#'.
		return "", "", true, fmt.Errorf("%w: group %q contains %q", ErrInvalidShare, group, group[i])
	}
	if err := ValidateFilter(inner); err != nil {
		return "", "", true, fmt.Errorf("%w: %w", ErrInvalidShare, err)
	}
	return group, inner, true, nil
}
