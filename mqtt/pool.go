package mqtt

import (
	"sync"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Buffers come from size-classed pools so that an idle connection holds no
// large buffer: the reader keeps one small buffer and borrows a bigger one
// only for a packet that does not fit; the writer's queue is borrowed while
// it is non-empty.
var sizeClasses = [...]int{512, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20}

var bufPools [len(sizeClasses)]sync.Pool

// smallBufSize is the reader's resident buffer: most IoT packets fit.
const smallBufSize = 512

// getBuf returns a buffer of length n, pooled when n fits a size class.
func getBuf(n int) []byte {
	for i, size := range sizeClasses {
		if n <= size {
			if b, ok := bufPools[i].Get().(*[]byte); ok {
				return (*b)[:n]
			}
			return make([]byte, n, size)
		}
	}
	return make([]byte, n)
}

// putBuf returns b to the largest class its capacity covers. Buffers beyond
// twice the largest class are left to the garbage collector.
func putBuf(b []byte) {
	c := cap(b)
	if c < sizeClasses[0] || c > 2*sizeClasses[len(sizeClasses)-1] {
		return
	}
	for i := len(sizeClasses) - 1; i >= 0; i-- {
		if c >= sizeClasses[i] {
			b = b[:0]
			bufPools[i].Put(&b)
			return
		}
	}
}

// publishPool recycles the inbound PUBLISH structs: Handler.Publish may not
// keep them.
var publishPool = sync.Pool{New: func() any { return new(packet.Publish) }}
