package topic

import (
	"strings"
	"sync/atomic"
)

// Trie indexes subscriptions by topic filter and finds those matching a
// topic name. K identifies a subscriber (one entry per filter and key), V is
// what the subscriber asked for (options).
//
// Shared subscriptions ($share/<group>/<filter>) are kept apart from plain
// ones: Match reports each matching group once, with all of its members, so
// the caller can pick one member per group.
//
// A Trie is not safe for concurrent mutation; callers guard it with a lock.
// Match may run concurrently with other Match calls.
type Trie[K comparable, V any] struct {
	root  *node[K, V]
	count int
}

type node[K comparable, V any] struct {
	children map[string]*node[K, V]
	subs     map[K]V
	shared   map[string]*Group[K, V]
}

// Group is the set of members of one shared subscription: the same group
// name and the same filter.
type Group[K comparable, V any] struct {
	Name    string
	Filter  string
	Members []Member[K, V]
	next    atomic.Uint64
}

// Member is one subscriber of a shared subscription group.
type Member[K comparable, V any] struct {
	Key K
	Val V
}

// Next returns the index of the member whose turn it is, round robin. It is
// safe for concurrent use.
func (g *Group[K, V]) Next() int {
	return int((g.next.Add(1) - 1) % uint64(len(g.Members)))
}

// NewTrie returns an empty trie.
func NewTrie[K comparable, V any]() *Trie[K, V] {
	return &Trie[K, V]{root: &node[K, V]{}}
}

// Len returns the number of subscriptions (plain and shared) in the trie.
func (t *Trie[K, V]) Len() int { return t.count }

// Add stores the subscription of key to filter, replacing any earlier one of
// the same key and filter. The filter must be valid (see ValidateFilter and
// ParseShared). It reports whether an existing subscription was replaced.
func (t *Trie[K, V]) Add(filter string, key K, v V) (replaced bool) {
	group, inner, shared, err := ParseShared(filter)
	if err != nil || !shared {
		inner = filter
	}
	n := t.root
	for _, level := range strings.Split(inner, "/") {
		child := n.children[level]
		if child == nil {
			if n.children == nil {
				n.children = make(map[string]*node[K, V])
			}
			child = &node[K, V]{}
			n.children[level] = child
		}
		n = child
	}
	if shared {
		if n.shared == nil {
			n.shared = make(map[string]*Group[K, V])
		}
		g := n.shared[group]
		if g == nil {
			g = &Group[K, V]{Name: group, Filter: inner}
			n.shared[group] = g
		}
		for i := range g.Members {
			if g.Members[i].Key == key {
				// Copy on write: a concurrent Match may hold the old slice.
				members := append([]Member[K, V](nil), g.Members...)
				members[i].Val = v
				g.Members = members
				return true
			}
		}
		g.Members = append(append([]Member[K, V](nil), g.Members...), Member[K, V]{Key: key, Val: v})
		t.count++
		return false
	}
	if n.subs == nil {
		n.subs = make(map[K]V)
	}
	_, replaced = n.subs[key]
	n.subs[key] = v
	if !replaced {
		t.count++
	}
	return replaced
}

// Remove deletes the subscription of key to filter and prunes empty nodes.
// It reports whether there was one.
func (t *Trie[K, V]) Remove(filter string, key K) bool {
	group, inner, shared, err := ParseShared(filter)
	if err != nil || !shared {
		inner = filter
	}
	levels := strings.Split(inner, "/")
	path := make([]*node[K, V], 0, len(levels)+1)
	n := t.root
	path = append(path, n)
	for _, level := range levels {
		n = n.children[level]
		if n == nil {
			return false
		}
		path = append(path, n)
	}
	removed := false
	if shared {
		g := n.shared[group]
		if g == nil {
			return false
		}
		for i := range g.Members {
			if g.Members[i].Key == key {
				members := make([]Member[K, V], 0, len(g.Members)-1)
				members = append(members, g.Members[:i]...)
				g.Members = append(members, g.Members[i+1:]...)
				removed = true
				break
			}
		}
		if len(g.Members) == 0 {
			delete(n.shared, group)
		}
	} else if _, ok := n.subs[key]; ok {
		delete(n.subs, key)
		removed = true
	}
	if !removed {
		return false
	}
	t.count--
	for i := len(path) - 1; i > 0; i-- {
		p := path[i]
		if len(p.children) > 0 || len(p.subs) > 0 || len(p.shared) > 0 {
			break
		}
		delete(path[i-1].children, levels[i-1])
	}
	return true
}

// Group returns the shared subscription group of a $share/<group>/<filter>
// filter, or nil when it has no members.
func (t *Trie[K, V]) Group(sharedFilter string) *Group[K, V] {
	group, inner, shared, err := ParseShared(sharedFilter)
	if err != nil || !shared {
		return nil
	}
	n := t.root
	for _, level := range strings.Split(inner, "/") {
		if n = n.children[level]; n == nil {
			return nil
		}
	}
	return n.shared[group]
}

// Match calls plain for every plain subscription whose filter matches the
// topic name, and shared for every shared subscription group that matches.
// Either callback may be nil. Topics starting with '$' are not matched by
// filters starting with a wildcard [MQTT-4.7.2-1].
func (t *Trie[K, V]) Match(name string, plain func(key K, v V), shared func(g *Group[K, V])) {
	dollar := strings.HasPrefix(name, "$")
	t.root.match(name, true, dollar, plain, shared)
}

func (n *node[K, V]) match(rest string, first, dollar bool, plain func(K, V), shared func(*Group[K, V])) {
	level, tail, more := strings.Cut(rest, "/")
	wild := !(first && dollar)
	if wild {
		if hash := n.children["#"]; hash != nil {
			hash.visit(plain, shared)
		}
		if plus := n.children["+"]; plus != nil {
			plus.descend(tail, more, dollar, plain, shared)
		}
	}
	if child := n.children[level]; child != nil {
		child.descend(tail, more, dollar, plain, shared)
	}
}

func (n *node[K, V]) descend(tail string, more, dollar bool, plain func(K, V), shared func(*Group[K, V])) {
	if more {
		n.match(tail, false, dollar, plain, shared)
		return
	}
	n.visit(plain, shared)
	// "a/#" also matches "a" [MQTT-4.7.1-2].
	if hash := n.children["#"]; hash != nil {
		hash.visit(plain, shared)
	}
}

func (n *node[K, V]) visit(plain func(K, V), shared func(*Group[K, V])) {
	if plain != nil {
		for k, v := range n.subs {
			plain(k, v)
		}
	}
	if shared != nil {
		for _, g := range n.shared {
			if len(g.Members) > 0 {
				shared(g)
			}
		}
	}
}

// Matches reports whether the topic name matches the (non-shared) filter,
// with the same rules as Trie.Match.
func Matches(filter, name string) bool {
	if strings.HasPrefix(name, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, ftail, fmore := strings.Cut(filter, "/")
		nl, ntail, nmore := strings.Cut(name, "/")
		switch {
		case fl == "#":
			return true
		case fl != "+" && fl != nl:
			return false
		}
		switch {
		case !fmore && !nmore:
			return true
		case !nmore:
			return ftail == "#"
		case !fmore:
			return false
		}
		filter, name = ftail, ntail
	}
}

// Covers reports whether every topic name the (non-shared) filter sub
// matches is also matched by filter, e.g. "a/#" covers "a/+/b" and "a/b",
// "+/b" covers "x/b" but not "#". Access rules use it for subscriptions.
func Covers(filter, sub string) bool {
	if strings.HasPrefix(sub, "$") != strings.HasPrefix(filter, "$") &&
		(strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false // a leading wildcard never reaches $ topics
	}
	for {
		fl, ftail, fmore := strings.Cut(filter, "/")
		sl, stail, smore := strings.Cut(sub, "/")
		switch {
		case fl == "#":
			return true
		case sl == "#":
			return false // sub reaches deeper than a non-# filter level
		case fl == "+":
			// covers any single level, + included
		case fl != sl:
			return false
		}
		switch {
		case !fmore && !smore:
			return true
		case !smore:
			// "a/#" covers "a" (handled by fl == "#" on the next level)
			return ftail == "#"
		case !fmore:
			return false
		}
		filter, sub = ftail, stail
	}
}
