package topic

import (
	"slices"
	"testing"
)

func TestMatches(t *testing.T) {
	tests := []struct {
		filter, name string
		want         bool
	}{
		{"a/b/c", "a/b/c", true},
		{"a/b/c", "a/b", false},
		{"a/b", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"+", "a", true},
		{"+", "a/b", false},
		{"+/+", "/a", true},
		{"/+", "/a", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/b/#", "a", false},
		{"+/#", "a", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/+", "$SYS/x", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
	}
	for _, tt := range tests {
		t.Run(tt.filter+" "+tt.name, func(t *testing.T) {
			if got := Matches(tt.filter, tt.name); got != tt.want {
				t.Errorf("Matches(%q, %q) = %v, want %v", tt.filter, tt.name, got, tt.want)
			}
			tr := NewTrie[string, int]()
			tr.Add(tt.filter, "k", 1)
			var got []string
			tr.Match(tt.name, func(k string, _ int) { got = append(got, k) }, nil)
			if (len(got) == 1) != tt.want || len(got) > 1 {
				t.Errorf("Trie.Match(%q) with filter %q = %v, want match %v", tt.name, tt.filter, got, tt.want)
			}
		})
	}
}

func TestTrieAddRemove(t *testing.T) {
	tr := NewTrie[string, int]()
	if tr.Add("a/+", "c1", 1) {
		t.Fatal("first Add reported a replacement")
	}
	if !tr.Add("a/+", "c1", 2) {
		t.Fatal("second Add of the same key and filter did not replace")
	}
	tr.Add("a/#", "c1", 0)
	tr.Add("a/b", "c2", 1)
	tr.Add("$share/g/a/b", "c3", 1)
	tr.Add("$share/g/a/b", "c4", 1)
	tr.Add("$share/h/a/+", "c5", 0)
	if tr.Len() != 6 {
		t.Fatalf("Len = %d, want 6", tr.Len())
	}

	type hit struct {
		key string
		val int
	}
	var plain []hit
	var groups []string
	tr.Match("a/b", func(k string, v int) { plain = append(plain, hit{k, v}) }, func(g *Group[string, int]) {
		names := []string{}
		for _, m := range g.Members {
			names = append(names, m.Key)
		}
		groups = append(groups, g.Name+":"+g.Filter+":"+join(names))
	})
	slices.SortFunc(plain, func(a, b hit) int {
		if a.key != b.key {
			return compare(a.key, b.key)
		}
		return a.val - b.val
	})
	slices.Sort(groups)
	wantPlain := []hit{{"c1", 0}, {"c1", 2}, {"c2", 1}}
	if !slices.Equal(plain, wantPlain) {
		t.Errorf("plain matches = %v, want %v", plain, wantPlain)
	}
	wantGroups := []string{"g:a/b:c3,c4", "h:a/+:c5"}
	if !slices.Equal(groups, wantGroups) {
		t.Errorf("shared matches = %v, want %v", groups, wantGroups)
	}

	if g := tr.Group("$share/g/a/b"); g == nil || len(g.Members) != 2 {
		t.Errorf("Group($share/g/a/b) = %v, want two members", g)
	}
	if g := tr.Group("$share/nope/a/b"); g != nil {
		t.Errorf("Group of an unknown group = %v", g)
	}
	for _, rm := range []struct{ filter, key string }{
		{"a/+", "c1"}, {"a/#", "c1"}, {"a/b", "c2"}, {"$share/g/a/b", "c3"}, {"$share/g/a/b", "c4"}, {"$share/h/a/+", "c5"},
	} {
		if !tr.Remove(rm.filter, rm.key) {
			t.Errorf("Remove(%q, %q) = false", rm.filter, rm.key)
		}
	}
	if tr.Remove("a/b", "c2") {
		t.Error("second Remove reported success")
	}
	if tr.Len() != 0 || len(tr.root.children) != 0 {
		t.Errorf("trie not empty after removing everything: len %d, children %d", tr.Len(), len(tr.root.children))
	}
}

func TestGroupNextRoundRobin(t *testing.T) {
	g := &Group[string, int]{Members: []Member[string, int]{{Key: "a"}, {Key: "b"}, {Key: "c"}}}
	var got []int
	for range 6 {
		got = append(got, g.Next())
	}
	if want := []int{0, 1, 2, 0, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("Next sequence = %v, want %v", got, want)
	}
}

func join(s []string) string {
	slices.Sort(s)
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestCovers(t *testing.T) {
	tests := []struct {
		filter, sub string
		want        bool
	}{
		{"#", "a/b", true},
		{"#", "#", true},
		{"a/#", "a/+/b", true},
		{"a/#", "a", true},
		{"a/#", "b/#", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a/b/c", false},
		{"+/b", "x/b", true},
		{"+/b", "#", false},
		{"a/b", "a/b", true},
		{"a/b", "a/+", false},
		{"#", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
	}
	for _, tt := range tests {
		if got := Covers(tt.filter, tt.sub); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.filter, tt.sub, got, tt.want)
		}
	}
}
