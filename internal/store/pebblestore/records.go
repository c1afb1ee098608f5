package pebblestore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

// Value encodings of the records that are not plain messages. Each starts
// with a version byte, so a later release can change a record and still
// read the old form. Times are signed varint Unix nanoseconds, with 0 for
// the zero time (a time of exactly 1970-01-01T00:00:00Z reads back as zero).

const recordVersion = 1

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(dst, 0)
	}
	return binary.AppendVarint(dst, t.UnixNano())
}

// session: version | expiry interval ns | created | updated | disconnected.
// The client id is in the key.
func encodeSession(s *store.Session) []byte {
	b := make([]byte, 0, 1+4*binary.MaxVarintLen64)
	b = append(b, recordVersion)
	b = binary.AppendVarint(b, int64(s.ExpiryInterval))
	b = appendTime(b, s.Created)
	b = appendTime(b, s.Updated)
	return appendTime(b, s.Disconnected)
}

func decodeSession(clientID string, v []byte) (store.Session, error) {
	r := reader{buf: v, what: "session"}
	r.version()
	s := store.Session{
		ClientID:       clientID,
		ExpiryInterval: time.Duration(r.varint()),
		Created:        r.time(),
		Updated:        r.time(),
		Disconnected:   r.time(),
	}
	return s, r.done()
}

// subscription: version | QoS | flags (1 no-local, 2 retain-as-published) |
// retain handling | uvarint id. The filter is in the key.
func encodeSubscription(sub *store.Subscription) []byte {
	var flags byte
	if sub.NoLocal {
		flags |= 1
	}
	if sub.RetainAsPublished {
		flags |= 2
	}
	b := []byte{recordVersion, sub.QoS, flags, sub.RetainHandling}
	return binary.AppendUvarint(b, uint64(sub.ID))
}

func decodeSubscription(filter string, v []byte) (store.Subscription, error) {
	r := reader{buf: v, what: "subscription"}
	r.version()
	sub := store.Subscription{Filter: filter, QoS: r.byte()}
	flags := r.byte()
	sub.NoLocal, sub.RetainAsPublished = flags&1 != 0, flags&2 != 0
	sub.RetainHandling = r.byte()
	id := r.uvarint()
	if id > 1<<32-1 {
		r.fail()
	}
	sub.ID = uint32(id)
	if err := r.done(); err != nil {
		return sub, err
	}
	if err := sub.Check(); err != nil {
		return sub, fmt.Errorf("%w: %v", store.ErrCorrupt, err)
	}
	return sub, nil
}

// outbound: version | uvarint order | state | message. The packet id is in
// the key; order is the session-local insertion number.
func encodeOutbound(order uint64, o *store.Outbound) ([]byte, error) {
	b := make([]byte, 0, 16+len(o.Message.Payload)+len(o.Message.Topic))
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, order)
	b = append(b, byte(o.State))
	return o.Message.AppendBinary(b)
}

func decodeOutbound(pid uint16, v []byte) (order uint64, o store.Outbound, err error) {
	r := reader{buf: v, what: "outbound"}
	r.version()
	order = r.uvarint()
	o = store.Outbound{PacketID: pid, State: store.OutboundState(r.byte())}
	if r.err != nil {
		return 0, o, r.err
	}
	if err := o.Message.UnmarshalBinary(r.buf); err != nil {
		return 0, o, err
	}
	return order, o, nil
}

// outboundOrder reads only the order of an outbound record.
func outboundOrder(v []byte) (uint64, error) {
	r := reader{buf: v, what: "outbound"}
	r.version()
	order := r.uvarint()
	return order, r.err
}

// will: version | delay ns | deadline | message.
func encodeWill(w *store.Will) ([]byte, error) {
	b := make([]byte, 0, 24+len(w.Message.Payload)+len(w.Message.Topic))
	b = append(b, recordVersion)
	b = binary.AppendVarint(b, int64(w.Delay))
	b = appendTime(b, w.Deadline)
	return w.Message.AppendBinary(b)
}

func decodeWill(v []byte) (store.Will, error) {
	r := reader{buf: v, what: "will"}
	r.version()
	w := store.Will{Delay: time.Duration(r.varint()), Deadline: r.time()}
	if r.err != nil {
		return w, r.err
	}
	return w, w.Message.UnmarshalBinary(r.buf)
}

// reader is a sticky-error decoder for the records above; see the store
// package's twin for messages.
type reader struct {
	buf  []byte
	what string
	err  error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s record", store.ErrCorrupt, r.what)
	}
	r.buf = nil
}

func (r *reader) byte() byte {
	if len(r.buf) == 0 {
		r.fail()
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) version() {
	if v := r.byte(); v != recordVersion {
		r.fail()
	}
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) time() time.Time {
	ns := r.varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (r *reader) done() error {
	if r.err == nil && len(r.buf) != 0 {
		r.fail()
	}
	return r.err
}
