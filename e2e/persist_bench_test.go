package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// BenchmarkPersistedQoS1 measures QoS 1 messages per second from 8
// publishers (64 unacknowledged each) to one persistent subscriber, with
// the default queue bounds (a subscriber that falls behind spills into
// the store): the Pebble store in sync durability (every PUBACK waits for
// an fsync shared by the messages committed together), Pebble without
// fsync, and the memory store, in one run.
//
//	go test -run NONE -bench PersistedQoS1 -benchtime 100000x ./e2e
func BenchmarkPersistedQoS1(b *testing.B) {
	for _, store := range []struct{ name, engine, durability string }{
		{"pebble-sync", "pebble", "sync"}, {"pebble-none", "pebble", "none"}, {"memory", "memory", "sync"},
	} {
		b.Run(store.name, func(b *testing.B) {
			cfg := config.Default()
			cfg.MQTT.Addr = "127.0.0.1:0"
			cfg.AMQP.AppAddr = "127.0.0.1:0"
			cfg.AMQP.Addr = "127.0.0.1:0"
			cfg.HTTP.Addr = ""
			cfg.MQTT.SysInterval = 0
			cfg.Store.Engine = store.engine
			cfg.Store.Durability = store.durability
			cfg.DataDir = b.TempDir()
			n := startNode(b, cfg)
			addr := n.MQTTAddr().String()

			sub, _, err := dialRaw(addr, "persistent-sub", false)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.conn.Close()
			sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "p/#", QoS: 1}}})
			if _, err := sub.read(); err != nil {
				b.Fatal(err)
			}
			const publishers, window = 8, 64
			per := max(1, b.N/publishers)
			total := per * publishers
			received := make(chan struct{})
			go func() {
				for got := 0; got < total; {
					p, err := sub.read()
					if err != nil {
						return
					}
					if pub, ok := p.(*packet.Publish); ok {
						got++
						sub.queue(&packet.Puback{PacketID: pub.PacketID})
						if sub.r.Buffered() == 0 {
							sub.flush()
						}
					}
				}
				close(received)
			}()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i := range publishers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					benchPublisher(b, addr, fmt.Sprintf("p/%d", i), per, window)
				}()
			}
			wg.Wait()
			select {
			case <-received:
			case <-time.After(60 * time.Second):
				b.Fatal("subscriber did not receive everything")
			}
			b.ReportMetric(float64(total)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

func benchPublisher(b *testing.B, addr, topic string, count, window int) {
	c, _, err := dialRaw(addr, "pub-"+topic, true)
	if err != nil {
		b.Error(err)
		return
	}
	defer c.conn.Close()
	credits := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for acked := 0; acked < count; {
			p, err := c.read()
			if err != nil {
				return
			}
			if _, ok := p.(*packet.Puback); ok {
				acked++
				credits <- struct{}{}
			}
		}
	}()
	payload := make([]byte, 64)
	for i := range count {
		select {
		case <-credits:
		default:
			c.flush() // out of credit: let the queued publishes go
			<-credits
		}
		if err := c.queue(&packet.Publish{Topic: topic, QoS: 1, PacketID: uint16(i%60000) + 1, Payload: payload}); err != nil {
			b.Error(err)
			return
		}
	}
	c.flush()
	<-done
}
