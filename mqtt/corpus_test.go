package mqtt_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the named seeds under testdata/fuzz/FuzzConnection")

// connectionSeed is one input of FuzzConnection: v is 4 (3.1.1) or 5 to
// have the target send a CONNECT of that version first, 0 to send data
// alone.
type connectionSeed struct {
	v    byte
	data []byte
}

// connectionSeeds are client sessions as real clients write them (full
// QoS 1 and 2 flows, v5 properties, shared subscriptions, wills, topic
// aliases) and the protocol errors the connection must answer: a second
// CONNECT, a bad topic alias, more QoS 1 publishes than receive-maximum, an
// oversized packet, a truncated one.
func connectionSeeds(t *testing.T) map[string]connectionSeed {
	seeds := map[string]connectionSeed{}
	add := func(name string, v packet.Version, send byte, ps ...packet.Packet) {
		var b []byte
		for _, p := range ps {
			var err error
			if b, err = p.Append(b, v); err != nil {
				t.Fatalf("%s: %T: %v", name, p, err)
			}
		}
		seeds[name] = connectionSeed{send, b}
	}
	v311, v5 := packet.V311, packet.V5
	for _, v := range []packet.Version{v311, v5} {
		pre := "v311"
		if v == v5 {
			pre = "v5"
		}
		add(pre+"-qos-flows", v, byte(v),
			&packet.Publish{Topic: "sensors/1/temp", Payload: []byte("21.5")},
			&packet.Publish{QoS: 1, PacketID: 1, Topic: "sensors/1/temp", Payload: []byte("21.6"), Retain: true},
			&packet.Publish{QoS: 2, PacketID: 2, Topic: "sensors/1/temp", Payload: []byte("21.7")},
			&packet.Pubrel{PacketID: 2},
			&packet.Publish{QoS: 2, PacketID: 2, Dup: true, Topic: "sensors/1/temp", Payload: []byte("21.7")},
			&packet.Pingreq{}, &packet.Disconnect{})
		add(pre+"-subscribe-and-acks", v, byte(v),
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
				{Filter: "sensors/+/temp", QoS: 1}, {Filter: "cmd/#", QoS: 2}, {Filter: "$SYS/broker/uptime"}}},
			&packet.Publish{QoS: 1, PacketID: 3, Topic: "sensors/2/temp", Payload: []byte("x")},
			&packet.Puback{PacketID: 1}, &packet.Pubrec{PacketID: 2}, &packet.Pubcomp{PacketID: 2},
			&packet.Unsubscribe{PacketID: 4, Filters: []string{"cmd/#", "never/subscribed"}},
			&packet.Disconnect{})
		add(pre+"-second-connect", v, byte(v),
			&packet.Connect{ProtocolName: "MQTT", CleanStart: true, ClientID: "again", KeepAlive: 30})
		// Written by hand: the encoder refuses wildcards in a name and '#'
		// before the last level. v5 has a properties length (0) more.
		props := []byte{}
		if v == v5 {
			props = []byte{0}
		}
		var bad []byte
		bad = append(bad, 0x30, byte(5+len(props)), 0, 3, 'a', '/', '+')
		bad = append(bad, props...)
		bad = append(bad, 0x82, byte(10+len(props)), 0, 1)
		bad = append(bad, props...)
		bad = append(bad, 0, 5, 'a', '/', '#', '/', 'b', 0)
		seeds[pre+"-invalid-topics"] = connectionSeed{byte(v), bad}
		add(pre+"-packet-id-reuse", v, byte(v),
			&packet.Publish{QoS: 2, PacketID: 9, Topic: "t"},
			&packet.Publish{QoS: 1, PacketID: 9, Topic: "t"},
			&packet.Pubrel{PacketID: 10})
	}
	// The fuzz target's server takes packets up to 4096 bytes.
	add("v311-oversized-publish", v311, byte(v311),
		&packet.Publish{QoS: 1, PacketID: 1, Topic: "big", Payload: bytes.Repeat([]byte{'x'}, 5000)})

	add("v5-properties", v5, byte(v5),
		&packet.Publish{QoS: 1, PacketID: 1, Topic: "req/acme", Payload: []byte(`{"op":"reboot"}`),
			Properties: packet.Properties{PayloadFormat: u8(1), MessageExpiry: u32(60), ContentType: "application/json",
				ResponseTopic: "resp/acme/1", CorrelationData: []byte{1, 2, 3},
				User: []packet.UserProperty{{Key: "trace", Value: "abc"}}}},
		&packet.Subscribe{PacketID: 2, Properties: packet.Properties{SubscriptionIdentifier: []uint32{268435455}},
			Subscriptions: []packet.Subscription{
				{Filter: "$share/workers/jobs/#", QoS: 1},
				{Filter: "resp/acme/+", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}},
		&packet.Puback{PacketID: 1, ReasonCode: 0x10, Properties: packet.Properties{ReasonString: "no matching subscribers"}},
		&packet.Disconnect{ReasonCode: 0x04, Properties: packet.Properties{SessionExpiryInterval: u32(0)}})
	add("v5-topic-aliases", v5, byte(v5),
		&packet.Publish{Topic: "long/topic/name", Properties: packet.Properties{TopicAlias: u16(1)}},
		&packet.Publish{Payload: []byte("via alias"), Properties: packet.Properties{TopicAlias: u16(1)}},
		&packet.Publish{Payload: []byte("unknown alias"), Properties: packet.Properties{TopicAlias: u16(2)}},
		&packet.Publish{Topic: "t", Properties: packet.Properties{TopicAlias: u16(65535)}})
	var flood []packet.Packet
	for id := range uint16(70) { // the server's default receive-maximum is 64
		flood = append(flood, &packet.Publish{QoS: 2, PacketID: id + 1, Topic: "flood"})
	}
	add("v5-receive-maximum-exceeded", v5, byte(v5), flood...)
	// AUTH on a connection whose CONNECT named no authentication method.
	add("v5-auth-unexpected", v5, byte(v5),
		&packet.Auth{ReasonCode: 0x19, Properties: packet.Properties{AuthMethod: "SCRAM-SHA-1", AuthData: []byte("n,,n=user")}})

	add("raw-v5-connect-will-credentials", v5, 0,
		&packet.Connect{ProtocolName: "MQTT", CleanStart: false, ClientID: "sensor-17", KeepAlive: 60,
			Properties: packet.Properties{SessionExpiryInterval: u32(3600), ReceiveMaximum: u16(10),
				TopicAliasMaximum: u16(5), MaximumPacketSize: u32(65536), RequestProblemInfo: u8(1)},
			WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "status/sensor-17", WillPayload: []byte("offline"),
			WillProperties: packet.Properties{WillDelayInterval: u32(30), ContentType: "text/plain"},
			UsernameFlag:   true, Username: "sensor-17@acme", PasswordFlag: true, Password: []byte("secret")},
		&packet.Publish{Topic: "status/sensor-17", Payload: []byte("online"), Retain: true})
	add("raw-v31-connect", packet.V31, 0,
		&packet.Connect{ProtocolName: "MQIsdp", CleanStart: true, ClientID: "old-client", KeepAlive: 10},
		&packet.Publish{Topic: "legacy", Payload: []byte("x")})
	add("raw-publish-before-connect", v311, 0, &packet.Publish{Topic: "early"})
	seeds["raw-truncated-connect"] = connectionSeed{0, []byte{0x10, 0x20, 0x00, 0x04, 'M', 'Q'}}
	seeds["raw-remaining-length-overflow"] = connectionSeed{0, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}}
	return seeds
}

func u8(v byte) *byte { return &v }

// TestFuzzConnectionCorpus checks that testdata/fuzz/FuzzConnection holds
// the seeds above; go test -run TestFuzzConnectionCorpus -update-corpus
// rewrites them. Files the fuzzer adds (hash names) are left alone.
func TestFuzzConnectionCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzConnection")
	for name, s := range connectionSeeds(t) {
		want := fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", s.v, s.data)
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
			t.Errorf("%s is missing or stale (%v): run go test -run TestFuzzConnectionCorpus -update-corpus", path, err)
		}
	}
}
