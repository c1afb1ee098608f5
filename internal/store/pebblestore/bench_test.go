package pebblestore_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/pebblestore"
)

// benchMessage is a typical persisted QoS 1 telemetry message.
func benchMessage() *store.Message {
	return &store.Message{Topic: "tenant/devices/sensor-0042/telemetry", Payload: make([]byte, 64), QoS: 1}
}

// reportRate adds msgs/s and, for the store, writes per commit (the group
// commit factor: in sync mode, messages per fsync).
func reportRate(b *testing.B, s *pebblestore.Store, before pebblestore.Stats, msgs int) {
	b.Helper()
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(msgs)/sec, "msgs/s")
	}
	after := s.Stats()
	if commits := after.Commits - before.Commits; commits > 0 {
		b.ReportMetric(float64(after.Writes-before.Writes)/float64(commits), "writes/commit")
	}
}

// BenchmarkQueueAppendSync appends to offline queues from many writers at
// once (one session each, as many publishers fanning out), in sync mode:
// every append is fsynced before it returns, and group commit shares the
// fsyncs.
func BenchmarkQueueAppendSync(b *testing.B) {
	for _, writers := range []int{1, 16, 128, 512} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			benchAppend(b, pebblestore.DurabilitySync, writers, 1)
		})
	}
}

// BenchmarkQueueAppendBatchSync is BenchmarkQueueAppendSync with the hub's
// batched appends (AppendQueueBatch of 16 messages).
func BenchmarkQueueAppendBatchSync(b *testing.B) {
	for _, writers := range []int{16, 128} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			benchAppend(b, pebblestore.DurabilitySync, writers, 16)
		})
	}
}

// BenchmarkQueueAppendDurability compares the durability modes at 128
// writers.
func BenchmarkQueueAppendDurability(b *testing.B) {
	for _, d := range []pebblestore.Durability{pebblestore.DurabilitySync, pebblestore.DurabilityBatch, pebblestore.DurabilityNone} {
		b.Run(d.String(), func(b *testing.B) { benchAppend(b, d, 128, 1) })
	}
}

func benchAppend(b *testing.B, d pebblestore.Durability, writers, batch int) {
	s, err := pebblestore.Open(b.TempDir(), &pebblestore.Options{Durability: d})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
	before := s.Stats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprint("client-", next.Add(1))
		ms := make([]*store.Message, batch)
		for i := range ms {
			ms[i] = benchMessage()
		}
		for pb.Next() {
			var err error
			if batch == 1 {
				_, err = s.AppendQueue(ctx, "t", id, ms[0])
			} else {
				_, err = s.AppendQueueBatch(ctx, "t", id, ms)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportRate(b, s, before, b.N*batch)
}

// BenchmarkQueueLifecycleSync is the whole life of a persisted QoS 1
// message for an offline subscriber, in sync mode, from 128 writers: append
// it, and once 16 are delivered and acknowledged trim them. msgs/s counts
// messages, each costing one append and a sixteenth of a trim.
func BenchmarkQueueLifecycleSync(b *testing.B) {
	s, err := pebblestore.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(max(1, 128/runtime.GOMAXPROCS(0)))
	before := s.Stats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprint("client-", next.Add(1))
		m := benchMessage()
		for i := 1; pb.Next(); i++ {
			seq, err := s.AppendQueue(ctx, "t", id, m)
			if err == nil && i%16 == 0 {
				err = s.TrimQueue(ctx, "t", id, seq)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportRate(b, s, before, b.N)
}

// BenchmarkRetainedSet replaces retained messages on 1024 topics from 64
// writers, in sync mode.
func BenchmarkRetainedSet(b *testing.B) {
	s, err := pebblestore.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	before := s.Stats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		m := benchMessage()
		m.Retain = true
		for pb.Next() {
			m.Topic = fmt.Sprint("sensors/", next.Add(1)%1024, "/state")
			if err := s.SetRetained(ctx, "t", m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportRate(b, s, before, b.N)
}
