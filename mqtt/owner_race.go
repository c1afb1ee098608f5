//go:build race

package mqtt

import (
	"bytes"
	"runtime"
	"strconv"
)

// goroutineLock records the goroutine that owns some state. In race builds
// (every test run) check panics when the state is touched from another
// goroutine, so the ownership described in doc.go is enforced, not just
// described (after x/net/http2's gotrack.go).
type goroutineLock uint64

func newGoroutineLock() goroutineLock { return goroutineLock(curGoroutineID()) }

func (g goroutineLock) check() {
	if id := curGoroutineID(); id != uint64(g) {
		panic("mqtt: reader-owned state used on goroutine " + strconv.FormatUint(id, 10) +
			", owner is " + strconv.FormatUint(uint64(g), 10))
	}
}

func curGoroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("mqtt: cannot parse goroutine id: " + err.Error())
	}
	return id
}
