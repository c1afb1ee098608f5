package kafkabridge

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/amqp"
)

// TestEnvelopeRoundTrip: what the JSON converter makes of a message comes
// back as the same message.
func TestEnvelopeRoundTrip(t *testing.T) {
	seq := uint32(7)
	tests := []struct {
		name string
		in   *amqp.Message
		want string
	}{
		{"data", &amqp.Message{Data: [][]byte{[]byte("hi")}}, `{"body":{"type":"data","section":"aGk="}}`},
		{"value", &amqp.Message{Value: "hi"}, `{"body":{"type":"value","section":"hi"}}`},
		{"no body", &amqp.Message{Properties: &amqp.Properties{To: "x"}}, `{"properties":{"to":"x"}}`},
		{"everything", &amqp.Message{
			Properties:            &amqp.Properties{MessageID: uint64(9), CorrelationID: "c", GroupSequence: &seq, UserID: []byte("u")},
			ApplicationProperties: map[string]any{"b": true, "f": 1.5, "n": int64(-2), "s": "x", "z": nil},
			MessageAnnotations:    amqp.Annotations{amqp.Symbol("x-opt-a"): "y"},
			Data:                  [][]byte{[]byte("a"), []byte("b")},
		}, `{"properties":{"messageId":9,"userId":"dQ==","correlationId":"c","groupSequence":7},"applicationProperties":{"b":true,"f":1.5,"n":-2,"s":"x","z":null},"messageAnnotations":{"x-opt-a":"y"},"body":{"type":"data","section":"YWI="}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeEnvelope(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("got  %s\nwant %s", b, tt.want)
			}
			m, err := decodeEnvelope(b)
			if err != nil {
				t.Fatal(err)
			}
			again, err := encodeEnvelope(m)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("decoded and encoded again: %s, %v", again, err)
			}
		})
	}
}

// TestEnvelopeRefusals: what has no JSON form is refused, naming it.
func TestEnvelopeRefusals(t *testing.T) {
	tests := []struct {
		name string
		in   *amqp.Message
	}{
		{"list property", &amqp.Message{ApplicationProperties: map[string]any{"l": []any{1}}}},
		{"sequence body", &amqp.Message{Sequence: [][]any{{"a"}}}},
		{"binary message id", &amqp.Message{Properties: &amqp.Properties{MessageID: []byte("x")}}},
		{"ulong annotation key", &amqp.Message{MessageAnnotations: amqp.Annotations{uint64(1): "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := encodeEnvelope(tt.in); err == nil {
				t.Fatalf("encoded as %s", b)
			}
		})
	}
	for _, bad := range []string{`{"body":{"type":"xml"}}`, `{"body":{"type":"data","section":"!"}}`, `{} {}`, `{"applicationProperties":{"a":[1]}}`, `{"properties":{"messageId":-1}}`} {
		if _, err := decodeEnvelope([]byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

// FuzzDecodeEnvelope: any record value either fails to decode or
// decodes into a message whose envelope is stable from then on; a
// consumer sends it as an AMQP message.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"body":{"type":"data","section":"aGk="}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		once, err := encodeEnvelope(m)
		if err != nil {
			t.Fatalf("decoded %q into a message that does not encode: %v", b, err)
		}
		m2, err := decodeEnvelope(once)
		if err != nil {
			t.Fatalf("%s does not decode: %v", once, err)
		}
		twice, err := encodeEnvelope(m2)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("not stable: %s then %s (%v)", once, twice, err)
		}
		out := converter{json: true}.message(&kgo.Record{Topic: "t", Value: b})
		if _, err := out.AppendTo(nil); err != nil {
			t.Fatalf("the message of %q does not encode for AMQP: %v", b, err)
		}
	})
}
