package pebblestore

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the named seeds under testdata/fuzz/FuzzRecords")

// recordSeeds are values as the store writes them: sessions online,
// offline and never expiring, MQTT 5 subscriptions with every option, the
// two in-flight states of a delivery with a full message, and wills due at
// once or later. A format change shows here as a stale corpus.
func recordSeeds(t *testing.T) map[string][]byte {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	pf := byte(1)
	full := store.Message{
		Topic: "telemetry/acme/sensor-17", Payload: []byte(`{"temp":21.5}`), QoS: 1,
		Expiry: at.Add(time.Hour), ContentType: "application/json",
		ResponseTopic: "command_response/acme/42", CorrelationData: []byte{0xca, 0xfe},
		PayloadFormat: &pf, UserProperties: []store.UserProperty{{Key: "unit", Value: "C"}, {Key: "unit", Value: "F"}},
		Origin: "node-2", SubscriptionIDs: []uint32{1, 268435455},
	}
	seeds := map[string][]byte{
		"session-online":       encodeSession(&store.Session{ClientID: "sensor-17", ExpiryInterval: time.Hour, Created: at, Updated: at.Add(time.Minute)}),
		"session-disconnected": encodeSession(&store.Session{ClientID: "sensor-17", ExpiryInterval: 90 * time.Second, Created: at, Updated: at, Disconnected: at.Add(time.Second)}),
		"session-never-expire": encodeSession(&store.Session{ClientID: "gw", ExpiryInterval: store.NeverExpire, Created: at}),
		"subscription-qos0":    encodeSubscription(&store.Subscription{Filter: "sport/tennis/+"}),
		"subscription-v5-options": encodeSubscription(&store.Subscription{Filter: "command/acme/+/req/#", QoS: 2,
			NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 268435455}),
		"subscription-shared": encodeSubscription(&store.Subscription{Filter: "$share/workers/jobs/#", QoS: 1, RetainHandling: 1, ID: 3}),
	}
	add := func(name string, b []byte, err error) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		seeds[name] = b
	}
	b, err := encodeOutbound(7, &store.Outbound{PacketID: 1, State: store.OutboundPublished, Message: full})
	add("outbound-published-full", b, err)
	b, err = encodeOutbound(1<<40, &store.Outbound{PacketID: 65535, State: store.OutboundReleased,
		Message: store.Message{Topic: "a/b", QoS: 2, Retain: true}})
	add("outbound-released-qos2", b, err)
	b, err = encodeWill(&store.Will{Message: store.Message{Topic: "status/sensor-17", Payload: []byte("offline"), QoS: 1, Retain: true}})
	add("will-now", b, err)
	b, err = encodeWill(&store.Will{Message: full, Delay: 30 * time.Second, Deadline: at.Add(30 * time.Second)})
	add("will-delayed-full", b, err)
	return seeds
}

// TestFuzzRecordsCorpus checks that testdata/fuzz/FuzzRecords holds the
// seeds above; go test -run TestFuzzRecordsCorpus -update-corpus rewrites
// them. Files the fuzzer adds (hash names) are left alone.
func TestFuzzRecordsCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRecords")
	for name, b := range recordSeeds(t) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		path := filepath.Join(dir, name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s is missing or stale (%v): run go test -run TestFuzzRecordsCorpus -update-corpus", path, err)
		}
	}
}
