package amqp

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/amqp/frame"
)

// writer owns the write side of a connection. Frames are encoded straight
// into buf under mu; a goroutine exists only while buf is non-empty (it
// exits when it finds buf empty), so an idle connection holds no writer
// goroutine. Frames queued while a write is in progress go out together
// in the next write.
type writer struct {
	nc net.Conn

	mu      sync.Mutex
	buf     []byte        // frames waiting for the socket
	spare   []byte        // the buffer of the previous write, reused
	running bool          // a flush goroutine exists
	err     error         // first write error; sticky
	sealed  bool          // a close is queued: later frames are refused
	room    chan struct{} // made by a waiter (waitRoom), closed after a write
	onRoom  []func()      // TrySend callers waiting for room (whenRoom)
	idle    chan struct{} // made by drain, closed when the goroutine exits
	// lastDisp remembers the last frame in buf when it is a settled
	// accepted disposition, so that the next one for the following
	// delivery id can widen its range instead of adding a frame.
	lastDisp dispRun

	writes atomic.Uint64 // frames written, for heartbeats
}

// hardWriteBacklog is the queued size at which a peer that does not read
// is disconnected.
const hardWriteBacklog = 16 * maxWriteBacklog

var errSlowPeer = errors.New("amqp: peer does not read; write backlog exceeded")

type dispRun struct {
	ok          bool
	off         int
	ch          uint16
	role        frame.Role
	first, last uint32
}

func newWriter(nc net.Conn) *writer {
	return &writer{nc: nc}
}

// frame queues one frame. It never blocks, so the reader goroutine can use
// it; application paths call waitRoom first.
func (w *writer) frame(t frame.Type, ch uint16, body frame.Body) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.refusal(); err != nil {
		return err
	}
	if len(w.buf) > hardWriteBacklog {
		// The reader and the Handler's goroutines never block on the
		// socket, so a peer that sends but does not read could make us
		// queue without end. Past this bound it is disconnected.
		w.err = errSlowPeer
		w.nc.Close()
		return w.err
	}
	var err error
	w.grabLocked()
	start := len(w.buf)
	w.buf, err = frame.Append(w.buf, t, ch, body)
	if err != nil {
		return err
	}
	w.lastDisp.ok = false
	if d, ok := body.(*frame.Disposition); ok && d.Settled && d.Last == nil && isAccepted(d.State) {
		w.lastDisp = dispRun{ok: true, off: start, ch: ch, role: d.Role, first: d.First, last: d.First}
	}
	w.kick()
	return nil
}

// refusal is why a frame cannot be queued now, if it cannot. Called with
// mu held.
func (w *writer) refusal() error {
	if w.err != nil {
		return w.err
	}
	if w.sealed {
		return ErrClosed
	}
	return nil
}

// seal refuses every frame queued from now on, while those queued already
// still go out: nothing may follow a close (part 2, section 2.4.3), not
// even a Send or flow racing with it.
func (w *writer) seal() {
	w.mu.Lock()
	w.sealed = true
	w.mu.Unlock()
}

func isAccepted(s frame.DeliveryState) bool {
	_, ok := s.(*frame.Accepted)
	return ok
}

// acceptSettled queues a settled accepted disposition for one delivery,
// merging it with the previous frame when that frame is a disposition of
// the preceding delivery id which has not been written yet (part 2,
// section 2.7.6: dispositions cover ranges).
func (w *writer) acceptSettled(ch uint16, role frame.Role, id uint32) error {
	w.mu.Lock()
	if err := w.refusal(); err != nil {
		w.mu.Unlock()
		return err
	}
	if r := w.lastDisp; r.ok && r.ch == ch && r.role == role && r.last+1 == id {
		last := id
		w.buf = w.buf[:r.off]
		w.buf, _ = frame.Append(w.buf, frame.TypeAMQP, ch, &frame.Disposition{
			Role: role, First: r.first, Last: &last, Settled: true, State: &frame.Accepted{}})
		w.lastDisp.last = id
		w.kick()
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	return w.frame(frame.TypeAMQP, ch, &frame.Disposition{Role: role, First: id, Settled: true, State: &frame.Accepted{}})
}

// raw queues bytes that are not a frame (protocol headers, heartbeats).
func (w *writer) raw(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.refusal(); err != nil {
		return err
	}
	w.grabLocked()
	w.buf = append(w.buf, b...)
	w.lastDisp.ok = false
	w.kick()
	return nil
}

// appendFrames runs fn with the buffer under the lock, for callers (the
// transfer path) that encode several frames at once.
func (w *writer) appendFrames(fn func([]byte) []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.refusal(); err != nil {
		return err
	}
	w.grabLocked()
	w.buf = fn(w.buf)
	w.lastDisp.ok = false
	w.kick()
	return nil
}

// writeBufSize is the capacity of new pooled write buffers. A burst grows
// a buffer; one up to maxPooledWriteBuf goes back to the pool as it is,
// so that busy connections do not grow a fresh buffer per burst.
const (
	writeBufSize      = 4096
	maxPooledWriteBuf = 256 << 10
)

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize); return &b }}

func putWriteBuf(b []byte) {
	if c := cap(b); c > 0 && c <= maxPooledWriteBuf {
		b = b[:0]
		writeBufs.Put(&b)
	}
}

// grabLocked gives an idle writer a buffer from the pool before it
// queues a frame. Called with mu held.
func (w *writer) grabLocked() {
	if w.buf == nil {
		w.buf = *writeBufs.Get().(*[]byte)
	}
}

// kick starts the flush goroutine if none runs. Called with mu held.
func (w *writer) kick() {
	if !w.running && len(w.buf) > 0 {
		w.running = true
		go w.flush()
	}
}

// flush writes buf until it finds it empty. Its owner is the writer: it
// exits when there is nothing left to write or after a write error.
func (w *writer) flush() {
	for {
		// Let goroutines that are about to queue frames (senders, the
		// reader answering a batch) run first: one larger write costs far
		// less than several small ones.
		runtime.Gosched()
		w.mu.Lock()
		if len(w.buf) == 0 || w.err != nil {
			w.running = false
			// Idle now: the buffers go back to the pool, so an idle
			// connection holds none.
			putWriteBuf(w.spare)
			w.spare = nil
			if len(w.buf) == 0 {
				putWriteBuf(w.buf)
				w.buf = nil
			}
			if w.idle != nil {
				close(w.idle)
				w.idle = nil
			}
			w.mu.Unlock()
			return
		}
		b := w.buf
		w.buf, w.spare = w.spare[:0], nil
		w.lastDisp.ok = false
		w.mu.Unlock()

		_, err := w.nc.Write(b)
		w.writes.Add(1)

		w.mu.Lock()
		// Keep the buffer for the next write unless a burst made it big:
		// idle connections should not hold megabytes.
		if cap(b) <= 1<<20 {
			w.spare = b[:0]
		}
		if err != nil && w.err == nil {
			w.err = err
		}
		if w.room != nil {
			close(w.room)
			w.room = nil
		}
		var onRoom []func()
		if len(w.onRoom) > 0 && (len(w.buf) < maxWriteBacklog || w.err != nil) {
			onRoom, w.onRoom = w.onRoom, nil
		}
		w.mu.Unlock()
		for _, f := range onRoom {
			f()
		}
	}
}

// whenRoom registers f to be called (by the flush goroutine, without
// locks) once the queue is below maxWriteBacklog again, and reports true,
// when the queue is at the bound now; otherwise it reports false and
// forgets f.
func (w *writer) whenRoom(f func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil || len(w.buf) < maxWriteBacklog {
		return false
	}
	w.onRoom = append(w.onRoom, f)
	return true
}

// full reports whether the queue is at maxWriteBacklog.
func (w *writer) full() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err == nil && len(w.buf) >= maxWriteBacklog
}

// waitRoom blocks while more than maxWriteBacklog bytes are queued:
// the policy is to slow down producers, never to drop or grow without
// bound.
func (w *writer) waitRoom(ctx context.Context, done <-chan struct{}) error {
	for {
		w.mu.Lock()
		if w.err != nil || len(w.buf) < maxWriteBacklog {
			err := w.err
			w.mu.Unlock()
			return err
		}
		if w.room == nil {
			w.room = make(chan struct{})
		}
		room := w.room
		w.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return ErrClosed
		}
	}
}

// drain waits until everything queued has been written, or the timeout,
// and reports whether it all went out.
func (w *writer) drain(timeout time.Duration) bool {
	w.mu.Lock()
	if !w.running {
		ok := w.err == nil
		w.mu.Unlock()
		return ok
	}
	if w.idle == nil {
		w.idle = make(chan struct{})
	}
	idle := w.idle
	w.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err == nil
}

// fail makes every later write fail with err.
func (w *writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}
