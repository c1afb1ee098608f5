package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"simple", "a/b/c", nil},
		{"single char", "a", nil},
		{"slash only", "/", nil},
		{"leading slash", "/a", nil},
		{"empty levels", "a//b", nil},
		{"dollar", "$SYS/broker", nil},
		{"space", "a b", nil},
		{"unicode", "maison/température", nil},
		{"max length", strings.Repeat("a", MaxLength), nil},
		{"empty", "", ErrInvalidName},
		{"too long", strings.Repeat("a", MaxLength+1), ErrInvalidName},
		{"plus", "a/+/b", ErrInvalidName},
		{"hash", "a/#", ErrInvalidName},
		{"plus inside level", "a+b", ErrInvalidName},
		{"nul", "a\x00b", ErrInvalidName},
		{"bad utf8", "a\xffb", ErrInvalidName},
		{"surrogate", "a\xed\xa0\x80", ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.input)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ValidateName(%.20q) = %v, want %v", tt.input, err, tt.want)
			}
		})
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"plain", "a/b", nil},
		{"hash alone", "#", nil},
		{"plus alone", "+", nil},
		{"trailing hash", "a/b/#", nil},
		{"plus levels", "+/+/+", nil},
		{"plus and hash", "+/a/#", nil},
		{"leading slash hash", "/#", nil},
		{"empty levels", "a//+//#", nil},
		{"slash only", "/", nil},
		{"share is not special", "$share/g/a", nil},
		{"empty", "", ErrInvalidFilter},
		{"hash not last", "a/#/b", ErrInvalidFilter},
		{"hash glued before", "a/b#", ErrInvalidFilter},
		{"hash glued after", "a/#b", ErrInvalidFilter},
		{"plus glued", "a/b+/c", ErrInvalidFilter},
		{"plus glued after", "a/+b", ErrInvalidFilter},
		{"double hash", "##", ErrInvalidFilter},
		{"hash then slash", "#/", ErrInvalidFilter},
		{"nul", "a/\x00", ErrInvalidFilter},
		{"bad utf8", "\xc3", ErrInvalidFilter},
		{"too long", strings.Repeat("a", MaxLength+1), ErrInvalidFilter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateFilter(tt.input)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ValidateFilter(%.20q) = %v, want %v", tt.input, err, tt.want)
			}
		})
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		name       string
		input      string
		wantGroup  string
		wantInner  string
		wantShared bool
		want       error
	}{
		{"not shared", "a/b", "", "a/b", false, nil},
		{"not shared invalid", "a/#/b", "", "a/#/b", false, ErrInvalidFilter},
		{"no slash after share", "$share", "", "$share", false, nil},
		{"simple", "$share/g/a/b", "g", "a/b", true, nil},
		{"wildcards", "$share/group1/+/x/#", "group1", "+/x/#", true, nil},
		{"hash only", "$share/g/#", "g", "#", true, nil},
		{"no filter", "$share/g", "", "", true, ErrInvalidShare},
		{"empty filter", "$share/g/", "", "", true, ErrInvalidShare},
		{"empty group", "$share//a", "", "", true, ErrInvalidShare},
		{"plus in group", "$share/g+/a", "", "", true, ErrInvalidShare},
		{"hash in group", "$share/#/a", "", "", true, ErrInvalidShare},
		{"bad inner", "$share/g/a#", "", "", true, ErrInvalidShare},
		{"bad utf8 group", "$share/\xff/a", "", "", true, ErrInvalidShare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			group, inner, shared, err := ParseShared(tt.input)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ParseShared(%q) err = %v, want %v", tt.input, err, tt.want)
			}
			if group != tt.wantGroup || inner != tt.wantInner || shared != tt.wantShared {
				t.Fatalf("ParseShared(%q) = %q, %q, %v; want %q, %q, %v",
					tt.input, group, inner, shared, tt.wantGroup, tt.wantInner, tt.wantShared)
			}
		})
	}
}

func TestParseSharedBadInnerWrapsFilterError(t *testing.T) {
	_, _, _, err := ParseShared("$share/g/a/#/b")
	if !errors.Is(err, ErrInvalidShare) || !errors.Is(err, ErrInvalidFilter) {
		t.Fatalf("err = %v, want both ErrInvalidShare and ErrInvalidFilter", err)
	}
}
