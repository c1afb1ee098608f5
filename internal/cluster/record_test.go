package cluster

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/hub"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// view is the comparable content of a message.
type view struct {
	Topic, Payload             string
	QoS                        byte
	Retain                     bool
	Expiry                     int64 // Unix milliseconds; 0 for none
	ContentType, ResponseTopic string
	Correlation                *string
	Format                     int // -1 for none
	User                       []hub.UserProperty
	Origin                     string
	Created                    int64 // Unix nanoseconds; 0 for none
	Properties                 []hub.Property
}

func viewOf(m *hub.Message) view {
	v := view{Topic: m.Topic, Payload: string(m.Payload), QoS: m.QoS, Retain: m.Retain,
		ContentType: m.ContentType, ResponseTopic: m.ResponseTopic, User: m.UserProperties, Origin: m.Origin, Format: -1}
	if !m.Expiry.IsZero() {
		v.Expiry = m.Expiry.UnixMilli()
	}
	if m.CorrelationData != nil {
		s := string(m.CorrelationData)
		v.Correlation = &s
	}
	if m.PayloadFormat != nil {
		v.Format = int(*m.PayloadFormat)
	}
	if !m.Created.IsZero() {
		v.Created = m.Created.UnixNano()
	}
	v.Properties = m.Properties
	return v
}

func ptr[T any](v T) *T { return &v }

// full is a message with every field the record carries.
func full() *hub.Message {
	return &hub.Message{
		Topic:           "sensors/1/temp",
		Payload:         []byte(`{"t":21.5}`),
		QoS:             2,
		Retain:          true,
		Expiry:          time.UnixMilli(1767225600123),
		ContentType:     "application/json",
		ResponseTopic:   "sensors/1/reply",
		CorrelationData: []byte{0, 1, 0xff},
		PayloadFormat:   ptr[byte](1),
		UserProperties: []hub.UserProperty{
			{Key: "unit", Value: "celsius"},
			{Key: "unit", Value: "kelvin"}, // repeated keys keep their order
			{Key: "", Value: "empty key"},
			{Key: "a.b", Value: ""},
		},
		Origin: "device-1",
	}
}

var recordCases = []struct {
	name      string
	kt        string // Kafka topic
	tenant    string
	m         *hub.Message
	tombstone bool
}{
	{name: "minimal", kt: DefaultTopic, tenant: "t", m: &hub.Message{Topic: "a", Payload: []byte("x")}},
	{name: "full", kt: DefaultTopic, tenant: "DEFAULT_TENANT", m: full()},
	{name: "empty_payload", kt: DefaultTopic, tenant: "t", m: &hub.Message{Topic: "a/b", QoS: 1, CorrelationData: []byte{}, PayloadFormat: ptr[byte](0)}},
	{name: "retained", kt: DefaultRetainedTopic, tenant: "t", m: &hub.Message{Topic: "cfg/x", QoS: 1, Retain: true, Payload: []byte("on")}},
	{name: "tombstone", kt: DefaultRetainedTopic, tenant: "t", m: &hub.Message{Topic: "cfg/x", Retain: true}, tombstone: true},
	{name: "hono", kt: DefaultTopic, tenant: "acme", m: &hub.Message{Topic: "$hono/telemetry/dev-1", Payload: []byte("21.5"), QoS: 1,
		Created: time.Unix(0, 1767225600123456789), Properties: []hub.Property{
			{Key: "device_id", Value: "dev-1"}, {Key: "qos", Value: int64(1)}, {Key: "ttd", Value: int64(-1)}, {Key: "x-opt-retain", Value: true}}}},
}

// render prints a record as kcat would show it, one field a line.
func render(r *kgo.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "topic: %s\nkey: %s\n", r.Topic, strconv.Quote(string(r.Key)))
	if r.Value == nil {
		b.WriteString("value: null\n")
	} else {
		fmt.Fprintf(&b, "value: %s\n", strconv.Quote(string(r.Value)))
	}
	for _, h := range r.Headers {
		fmt.Fprintf(&b, "header: %s = %s\n", h.Key, strconv.Quote(string(h.Value)))
	}
	return b.String()
}

func TestRecordGolden(t *testing.T) {
	for _, tt := range recordCases {
		t.Run(tt.name, func(t *testing.T) {
			got := render(encode(tt.kt, tt.tenant, "node-a", tt.m, tt.tombstone))
			path := filepath.Join("testdata", "golden", tt.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("record changed (a wire format: change it on purpose, then go test -update)\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, tt := range recordCases {
		t.Run(tt.name, func(t *testing.T) {
			d, err := decode(encode(tt.kt, tt.tenant, "node-a", tt.m, tt.tombstone))
			if err != nil {
				t.Fatal(err)
			}
			if d.tenant != tt.tenant || d.node != "node-a" || d.tombstone != tt.tombstone {
				t.Errorf("decoded tenant %q node %q tombstone %v", d.tenant, d.node, d.tombstone)
			}
			want := viewOf(tt.m)
			if tt.tombstone {
				want = view{Topic: tt.m.Topic, Format: -1}
			}
			if got := viewOf(d.m); !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	rec := func(key string, headers ...string) *kgo.Record {
		r := &kgo.Record{Key: []byte(key), Value: []byte("v")}
		for i := 0; i < len(headers); i += 2 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
		}
		return r
	}
	tests := []struct {
		name string
		r    *kgo.Record
	}{
		{"no separator", rec("topic")},
		{"no topic", rec("t\x00")},
		{"tenant mismatch", rec("t\x00a", HeaderTenant, "u")},
		{"qos 3", rec("t\x00a", HeaderQoS, "3")},
		{"qos empty", rec("t\x00a", HeaderQoS, "")},
		{"retain yes", rec("t\x00a", HeaderRetain, "yes")},
		{"expiry text", rec("t\x00a", HeaderExpiry, "soon")},
		{"format 256", rec("t\x00a", HeaderFormat, "256")},
		{"repeated node", rec("t\x00a", HeaderNode, "a", HeaderNode, "b")},
		{"claim of another key", rec("t\x00$ferry/claim/x", HeaderClaim, "y")},
		{"claim under a plain topic", rec("t\x00x", HeaderClaim, "x")},
		{"claim time text", rec("t\x00$ferry/claim/x", HeaderClaim, "x", HeaderClaimed, "now")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decode(tt.r); !errors.Is(err, errNotFerry) {
				t.Errorf("decode = %v, want errNotFerry", err)
			}
		})
	}
}

func TestClaimRecord(t *testing.T) {
	at := time.Unix(1764000000, 123456789)
	r := encodeClaim(DefaultTopic, "acme", "node-a", "dev/1", at)
	want := "topic: ferry.messages\nkey: \"acme\\x00$ferry/claim/dev/1\"\nvalue: \"\"\n" +
		"header: ferry.tenant = \"acme\"\nheader: ferry.node = \"node-a\"\n" +
		"header: ferry.claim = \"dev/1\"\nheader: ferry.claimed = \"1764000000123456789\"\n"
	if got := render(r); got != want {
		t.Errorf("claim record (a wire format)\ngot:\n%s\nwant:\n%s", got, want)
	}
	d, err := decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if d.tenant != "acme" || d.node != "node-a" || d.claim != "dev/1" || !d.claimed.Equal(at) {
		t.Errorf("decoded %+v", d)
	}
	// Without the nanosecond header, the record's timestamp.
	r.Headers = r.Headers[:3]
	r.Timestamp = at.Truncate(time.Millisecond)
	if d, err := decode(r); err != nil || !d.claimed.Equal(r.Timestamp) {
		t.Errorf("decoded %+v, %v; want the record timestamp", d, err)
	}
}

func TestDecodeIgnoresOthersHeaders(t *testing.T) {
	r := encode(DefaultTopic, "t", "n", &hub.Message{Topic: "a", QoS: 1, Payload: []byte("p")}, false)
	r.Headers = append(r.Headers,
		kgo.RecordHeader{Key: "traceparent", Value: []byte("00-abc")},
		kgo.RecordHeader{Key: "ferry.future", Value: []byte("x")},
	)
	d, err := decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := viewOf(d.m), (view{Topic: "a", Payload: "p", QoS: 1, Format: -1}); !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
}

// fuzzHeaders turns "k=v" lines into headers, so that the fuzzer can vary
// them as one []byte.
func fuzzHeaders(b []byte) []kgo.RecordHeader {
	if len(b) == 0 {
		return nil
	}
	var hs []kgo.RecordHeader
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		k, v, _ := bytes.Cut(line, []byte("="))
		hs = append(hs, kgo.RecordHeader{Key: string(k), Value: v})
	}
	return hs
}

// FuzzDecode feeds the decoder what any producer could put in the topic:
// it must not panic, and what it accepts must survive encoding again.
func FuzzDecode(f *testing.F) {
	for _, tt := range recordCases {
		r := encode(tt.kt, tt.tenant, "node-a", tt.m, tt.tombstone)
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		f.Add(r.Key, r.Value, []byte(strings.Join(hs, "\n")), r.Value == nil)
	}
	f.Fuzz(func(t *testing.T, key, value, headers []byte, null bool) {
		r := &kgo.Record{Key: key, Value: value, Headers: fuzzHeaders(headers)}
		if null {
			r.Value = nil
		} else if r.Value == nil {
			r.Value = []byte{}
		}
		d, err := decode(r)
		if err != nil {
			return
		}
		again, err := decode(encode(DefaultTopic, d.tenant, d.node, d.m, d.tombstone))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if again.tenant != d.tenant || again.node != d.node || again.tombstone != d.tombstone {
			t.Fatalf("tenant/node/tombstone %q %q %v became %q %q %v", d.tenant, d.node, d.tombstone, again.tenant, again.node, again.tombstone)
		}
		if d.tombstone {
			if again.m.Topic != d.m.Topic {
				t.Fatalf("tombstone topic %q became %q", d.m.Topic, again.m.Topic)
			}
			return
		}
		if a, b := viewOf(d.m), viewOf(again.m); !reflect.DeepEqual(a, b) {
			t.Fatalf("message changed by re-encoding:\n%+v\n%+v", a, b)
		}
	})
}
