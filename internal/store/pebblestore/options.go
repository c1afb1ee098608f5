package pebblestore

import (
	"fmt"
	"log/slog"
	"time"
)

// Durability says when an acknowledged write reaches the disk.
type Durability int

const (
	// DurabilitySync: every write is fsynced before its call returns, so
	// whatever a caller was told is stored survives a crash of the process
	// or of the machine. Concurrent writes share one fsync (group commit).
	// The default.
	DurabilitySync Durability = iota
	// DurabilityBatch: writes return once applied, and the log is fsynced
	// at most every Options.SyncInterval. A crash of the machine loses the
	// writes of the last interval; a crash of the process alone loses at
	// most the writes not yet handed to the operating system.
	DurabilityBatch
	// DurabilityNone: no fsync at all; the operating system writes the log
	// when it pleases. For tests and throwaway data.
	DurabilityNone
)

// ParseDurability parses "sync", "batch" or "none" (the config file's and
// the command line's spelling).
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "sync", "":
		return DurabilitySync, nil
	case "batch":
		return DurabilityBatch, nil
	case "none":
		return DurabilityNone, nil
	}
	return 0, fmt.Errorf("pebblestore: unknown durability %q (want sync, batch or none)", s)
}

// String returns the name ParseDurability accepts.
func (d Durability) String() string {
	switch d {
	case DurabilitySync:
		return "sync"
	case DurabilityBatch:
		return "batch"
	case DurabilityNone:
		return "none"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// Options configures a Store. The zero value (and a nil *Options) is the
// default: sync durability, 10 ms sync interval for batch mode, an 8 MiB
// block cache, logs discarded.
type Options struct {
	// Durability is the write durability. Default DurabilitySync.
	Durability Durability
	// SyncInterval is the longest time between fsyncs in DurabilityBatch
	// mode. Default 10 ms; ignored in the other modes.
	SyncInterval time.Duration
	// CacheSize is the size of Pebble's block cache, in bytes. Default
	// 8 MiB.
	CacheSize int64
	// Logger receives Pebble's log lines (at Info and Error level). Default:
	// none.
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = 10 * time.Millisecond
	}
	if c.CacheSize == 0 {
		c.CacheSize = 8 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	if o.Durability < DurabilitySync || o.Durability > DurabilityNone {
		return fmt.Errorf("pebblestore: unknown durability %d", int(o.Durability))
	}
	if o.SyncInterval < 0 {
		return fmt.Errorf("pebblestore: negative sync interval %v", o.SyncInterval)
	}
	if o.CacheSize < 0 {
		return fmt.Errorf("pebblestore: negative cache size %d", o.CacheSize)
	}
	return nil
}

// pebbleLogger hands Pebble's log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble on unrecoverable corruption; Pebble expects it
// not to return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble")
	panic("pebble: " + msg)
}
