package hub

import (
	"strings"
	"sync"
	"time"
)

// retainedStore keeps the last retained message of each topic of a tenant,
// in a tree of topic levels, so that a SUBSCRIBE visits only the topics its
// filter can match instead of every retained topic of the tenant.
type retainedStore struct {
	mu    sync.RWMutex
	root  retainedNode
	count int
}

type retainedNode struct {
	children map[string]*retainedNode
	msg      *Message
}

// set stores m as its topic's retained message, or clears the topic when
// the payload is empty [MQTT-3.3.1-10]. With max > 0, a message for a
// topic that has none is refused (false) once max topics are retained;
// replacing and clearing are always accepted.
func (r *retainedStore) set(m *Message, max int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	levels := strings.Split(m.Topic, "/")
	if len(m.Payload) == 0 {
		if r.root.clear(levels) {
			r.count--
		}
		return true
	}
	n := &r.root
	for _, l := range levels {
		c := n.children[l]
		if c == nil {
			if max > 0 && r.count >= max {
				return false // a new topic; nothing was added yet
			}
			if n.children == nil {
				n.children = make(map[string]*retainedNode)
			}
			c = &retainedNode{}
			n.children[l] = c
		}
		n = c
	}
	if n.msg == nil {
		if max > 0 && r.count >= max {
			return false // an inner node without a message of its own
		}
		r.count++
	}
	n.msg = m
	return true
}

// clear removes the message at levels below n and prunes the nodes left
// empty; it reports whether there was one.
func (n *retainedNode) clear(levels []string) bool {
	if len(levels) == 0 {
		had := n.msg != nil
		n.msg = nil
		return had
	}
	c := n.children[levels[0]]
	if c == nil {
		return false
	}
	had := c.clear(levels[1:])
	if c.msg == nil && len(c.children) == 0 {
		delete(n.children, levels[0])
	}
	return had
}

// match returns the unexpired retained messages whose topic filter
// matches. Topics beginning with '$' are not matched by a filter beginning
// with a wildcard [MQTT-4.7.2-1].
func (r *retainedStore) match(filter string, now time.Time) []*Message {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Message
	r.root.match(strings.Split(filter, "/"), true, now, &out)
	return out
}

func (n *retainedNode) match(levels []string, first bool, now time.Time, out *[]*Message) {
	if len(levels) == 0 {
		if n.msg != nil && !n.msg.Expired(now) {
			*out = append(*out, n.msg)
		}
		return
	}
	switch l := levels[0]; l {
	case "#":
		// "a/#" matches "a" too [MQTT-4.7.1-2].
		if !first && n.msg != nil && !n.msg.Expired(now) {
			*out = append(*out, n.msg)
		}
		for name, c := range n.children {
			if first && strings.HasPrefix(name, "$") {
				continue
			}
			c.all(now, out)
		}
	case "+":
		for name, c := range n.children {
			if first && strings.HasPrefix(name, "$") {
				continue
			}
			c.match(levels[1:], false, now, out)
		}
	default:
		if c := n.children[l]; c != nil {
			c.match(levels[1:], false, now, out)
		}
	}
}

// all appends every unexpired message at or below n.
func (n *retainedNode) all(now time.Time, out *[]*Message) {
	if n.msg != nil && !n.msg.Expired(now) {
		*out = append(*out, n.msg)
	}
	for _, c := range n.children {
		c.all(now, out)
	}
}

func (r *retainedStore) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.count
}
