package pebblestore_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/pebblestore"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "ferry-store")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	durability, err := pebblestore.ParseDurability("sync") // from the config file
	if err != nil {
		log.Fatal(err)
	}
	s, err := pebblestore.Open(dir, &pebblestore.Options{Durability: durability})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	// Queue two messages for an offline session, deliver them, trim.
	first, err := s.AppendQueueBatch(ctx, "DEFAULT_TENANT", "sensor-1", []*store.Message{
		{Topic: "cmd/reboot", Payload: []byte("now"), QoS: 1},
		{Topic: "cmd/config", Payload: []byte("{}"), QoS: 1},
	})
	if err != nil {
		log.Fatal(err)
	}
	entries, _ := s.PeekQueue(ctx, "DEFAULT_TENANT", "sensor-1", 0, 10)
	for _, e := range entries {
		fmt.Println(e.Seq, e.Message.Topic)
	}
	_ = s.TrimQueue(ctx, "DEFAULT_TENANT", "sensor-1", first+1)
	info, _ := s.QueueInfo(ctx, "DEFAULT_TENANT", "sensor-1")
	fmt.Println("left:", info.Len)
	// Output:
	// 1 cmd/reboot
	// 2 cmd/config
	// left: 0
}
