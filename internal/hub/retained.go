package hub

import (
	"sync"
	"time"

	"github.com/ferry-iot/ferry/mqtt/topic"
)

// retainedStore keeps the last retained message of each topic of a tenant.
// Matching a filter scans every retained topic: fine for thousands of
// topics; a topic tree replaces the map when that stops being true.
type retainedStore struct {
	mu   sync.RWMutex
	msgs map[string]*Message
}

// set stores m as its topic's retained message, or clears the topic when
// the payload is empty [MQTT-3.3.1-10].
func (r *retainedStore) set(m *Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(m.Payload) == 0 {
		delete(r.msgs, m.Topic)
		return
	}
	r.msgs[m.Topic] = m
}

func (r *retainedStore) match(filter string, now time.Time) []*Message {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Message
	for name, m := range r.msgs {
		if !m.Expired(now) && topic.Matches(filter, name) {
			out = append(out, m)
		}
	}
	return out
}

func (r *retainedStore) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.msgs)
}
