package topic

import (
	"strings"
	"testing"
)

// FuzzTopic checks validation, matching and covering against each other on
// arbitrary filters and names, shared ones included:
//   - nothing panics, whatever the strings;
//   - a valid name is a valid filter, and matches itself;
//   - for a valid filter f and valid name n, Matches(f, n) equals
//     Covers(f, n) (n as a filter matches n alone) and equals what a Trie
//     holding f reports for n, as a plain subscription or a shared group;
//   - Covers is reflexive, and transitive through a name: Covers(f, g) and
//     Matches(g, n) imply Matches(f, n);
//   - removing the only subscription leaves an empty trie.
func FuzzTopic(f *testing.F) {
	for _, s := range [][3]string{
		{"sport/tennis/+", "sport/tennis/player1", "sport/tennis/player1"},
		{"sport/#", "sport/tennis/#", "sport"},
		{"+/+", "/+", "/finance"},
		{"#", "+/b", "$SYS/broker/uptime"},
		{"$SYS/#", "$SYS/broker/+", "$SYS/broker/clients"},
		{"+/monitor/Clients", "$SYS/monitor/Clients", "$SYS/monitor/Clients"},
		{"$share/g/sensors/+/temp", "sensors/1/temp", "sensors/1/temp"},
		{"$share/consumers/#", "#", "a/b/c"},
		{"$share//x", "x", "x"},
		{"$share/g+/x", "x", "x"},
		{"$share/g", "$share/g/", "$share/g/x"},
		{"a/+b", "a/#/c", "a/+"},
		{"a\x00b", "\xff", ""},
		{"telemetry/acme/+", "telemetry/acme/dev1", "telemetry/acme/dev1"},
		{"command//req/#", "command//req/+/x", "command//req/42/x"},
		{"a/", "a/+", "a/"},
		{"/", "+", "/"},
		{"a/b/#", "a/b", "a/b"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, filter, other, name string) {
		for _, s := range []string{filter, other, name} {
			ValidateName(s)
			ValidateFilter(s)
			ParseShared(s)
		}
		nameOK := ValidateName(name) == nil
		if nameOK {
			if err := ValidateFilter(name); err != nil {
				t.Fatalf("valid name %q is not a valid filter: %v", name, err)
			}
			if !Matches(name, name) {
				t.Fatalf("name %q does not match itself", name)
			}
		}

		group, inner, shared, err := ParseShared(filter)
		if err != nil {
			return
		}
		if shared && (group == "" || strings.ContainsAny(group, "/+#")) {
			t.Fatalf("ParseShared(%q) accepted group %q", filter, group)
		}
		if !Covers(inner, inner) {
			t.Fatalf("%q does not cover itself", inner)
		}
		tr := NewTrie[int, byte]()
		tr.Add(filter, 1, 0)
		if (tr.Group(filter) != nil) != shared {
			t.Fatalf("Group(%q) after Add: shared = %v", filter, shared)
		}
		if nameOK {
			want := Matches(inner, name)
			if c := Covers(inner, name); c != want {
				t.Fatalf("Matches(%q, %q) = %v but Covers = %v", inner, name, want, c)
			}
			var plain, groups int
			tr.Match(name, func(int, byte) { plain++ }, func(*Group[int, byte]) { groups++ })
			got := plain + groups
			if shared && plain > 0 || !shared && groups > 0 || got > 1 || (got == 1) != want {
				t.Fatalf("Trie with %q on %q: %d plain, %d groups; Matches = %v", filter, name, plain, groups, want)
			}
			if ValidateFilter(other) == nil && Covers(inner, other) && Matches(other, name) && !want {
				t.Fatalf("%q covers %q, which matches %q, but %q does not", inner, other, name, inner)
			}
		}
		if !tr.Remove(filter, 1) || tr.Len() != 0 {
			t.Fatalf("Remove(%q) of the only subscription: Len = %d", filter, tr.Len())
		}
		if nameOK {
			tr.Match(name, func(int, byte) { t.Fatalf("empty trie matched %q", name) },
				func(*Group[int, byte]) { t.Fatalf("empty trie matched %q to a group", name) })
		}
	})
}
