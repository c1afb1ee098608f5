package amqp

// idAlloc hands out channel numbers or link handles in constant time: the
// most recently released id, else the lowest never handed out, up to
// limit. (A scan for the lowest free id made opening n sessions cost
// O(n^2) map lookups under the connection's lock.) Ids need not be the
// lowest free: the spec only asks that they be unused and within the
// peer's channel-max or handle-max.
type idAlloc struct {
	limit uint32
	next  uint64 // lowest id never handed out; may reach limit+1 = 2^32
	free  []uint32
}

func (a *idAlloc) get() (uint32, bool) {
	if n := len(a.free); n > 0 {
		id := a.free[n-1]
		a.free = a.free[:n-1]
		return id, true
	}
	if a.next > uint64(a.limit) {
		return 0, false
	}
	id := uint32(a.next)
	a.next++
	return id, true
}

// put releases id, which get returned and which is no longer in use.
func (a *idAlloc) put(id uint32) { a.free = append(a.free, id) }
