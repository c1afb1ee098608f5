//go:build !race

package mqtt

// goroutineLock is a no-op outside race builds; see owner_race.go.
type goroutineLock struct{}

func newGoroutineLock() goroutineLock { return goroutineLock{} }

func (goroutineLock) check() {}
