package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/kafkatopics"
)

// consumeKafka counts the records of hono.<ep>.<tenant> produced from now
// on, as a Kafka application of Hono's topics would read them, until
// total came or Idle passed without one; recvDone gets the end. stop ends
// the client.
func (h Hono) consumeKafka(ctx context.Context, ep string, total int, received, last *atomic.Int64,
	latency func(sent int64, now time.Time), recvDone chan error) (stop func(), err error) {
	topic := "hono." + ep + "." + h.Tenant
	// From the partitions' ends as they are now, exactly: a reset to the
	// end would happen at the first fetch, after the devices began.
	admin, err := kgo.NewClient(kgo.SeedBrokers(h.KafkaBrokers...))
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	spans, err := kafkatopics.Offsets(ctx, admin, topic)
	admin.Close()
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	at := map[int32]kgo.Offset{}
	for p, s := range spans {
		at[p] = kgo.NewOffset().At(s.End)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.KafkaBrokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: at}))
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	go func() {
		for int(received.Load()) < total {
			pctx, cancel := context.WithTimeout(ctx, h.Idle)
			fs := cl.PollFetches(pctx)
			idle := pctx.Err() != nil
			cancel()
			if idle {
				if ctx.Err() != nil {
					recvDone <- ctx.Err()
				} else {
					recvDone <- nil // idle: the rest counts as lost
				}
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) >= 8 {
					latency(int64(binary.BigEndian.Uint64(r.Value)), now)
				}
				received.Add(1)
			})
			last.Store(now.UnixNano())
		}
		recvDone <- nil
	}()
	return cl.Close, nil
}
