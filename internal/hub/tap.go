package hub

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ferry-iot/ferry/mqtt/topic"
)

// A tap sees a tenant's messages on topics matching its filter, at once
// and at most once, as a clean QoS 0 subscription would, but without a
// session: no queue, no lock shared with other publishers, no
// acknowledgements. It is for in-process consumers that take every
// message into a bounded queue of their own (analytics queries over
// telemetry), where a session's bookkeeping would cost the publishers
// more than the consumer does.
type tap struct {
	filter string
	fn     func(*Message)
}

// taps is the hub's taps by tenant, replaced as a whole on change so that
// publishers read it without a lock.
type taps map[string][]*tap

// tapSet guards changes of the hub's taps.
type tapSet struct {
	mu  sync.Mutex
	cur atomic.Pointer[taps]
}

// Tap calls fn with every message published in tenant (or delivered from
// another node) on a topic matching filter, until stop is called. fn runs
// on the publisher's goroutine and must not block; like any receiver it
// must not modify m. A message a tap saw counts as matched, as a
// subscriber's would. A shared or invalid filter is refused: a tap sees
// every message of its filter.
func (h *Hub) Tap(tenant, filter string, fn func(m *Message)) (stop func(), err error) {
	if _, _, shared, err := topic.ParseShared(filter); err != nil {
		return nil, err
	} else if shared {
		return nil, fmt.Errorf("hub: a tap takes a plain filter, not the shared subscription %q", filter)
	}
	tp := &tap{filter: filter, fn: fn}
	h.taps.change(func(next taps) { next[tenant] = append(next[tenant], tp) })
	var once sync.Once
	return func() {
		once.Do(func() {
			h.taps.change(func(next taps) {
				if rest := slices.DeleteFunc(next[tenant], func(x *tap) bool { return x == tp }); len(rest) > 0 {
					next[tenant] = rest
				} else {
					delete(next, tenant)
				}
			})
		})
	}, nil
}

// change applies edit to a copy of the taps (slices included) and
// publishes the copy.
func (s *tapSet) change(edit func(taps)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := taps{}
	if cur := s.cur.Load(); cur != nil {
		for k, v := range *cur {
			next[k] = append([]*tap(nil), v...)
		}
	}
	edit(next)
	s.cur.Store(&next)
}

// tapped hands m to the tenant's matching taps and returns how many.
func (s *tapSet) tapped(tenant string, m *Message) int {
	cur := s.cur.Load()
	if cur == nil {
		return 0
	}
	n := 0
	for _, tp := range (*cur)[tenant] {
		if topic.Matches(tp.filter, m.Topic) {
			tp.fn(m)
			n++
		}
	}
	return n
}
