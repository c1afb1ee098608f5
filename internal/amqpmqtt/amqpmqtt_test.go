package amqpmqtt

import (
	"testing"
	"time"

	"github.com/ferry-iot/ferry/amqp"
)

func TestQoSRetainDelay(t *testing.T) {
	ann := func(kv ...any) amqp.Annotations {
		a := amqp.Annotations{}
		for i := 0; i < len(kv); i += 2 {
			a[kv[i].(amqp.Symbol)] = kv[i+1]
		}
		return a
	}
	for _, c := range []struct {
		name    string
		m       *amqp.Message
		qos     byte
		retain  bool
		delay   time.Duration
		wantErr bool
	}{
		{"plain", &amqp.Message{}, 0, false, 0, false},
		{"durable is QoS 1", &amqp.Message{Header: &amqp.MessageHeader{Durable: true}}, 1, false, 0, false},
		{"annotated", &amqp.Message{Header: &amqp.MessageHeader{Durable: true}, MessageAnnotations: ann(AnnotationQoS, int32(2), AnnotationRetain, true, AnnotationWillDelay, uint32(30))}, 2, true, 30 * time.Second, false},
		{"ubyte QoS", &amqp.Message{MessageAnnotations: ann(AnnotationQoS, uint8(0))}, 0, false, 0, false},
		{"QoS 3", &amqp.Message{MessageAnnotations: ann(AnnotationQoS, int32(3))}, 0, false, 0, true},
		{"QoS a string", &amqp.Message{MessageAnnotations: ann(AnnotationQoS, "1")}, 0, false, 0, true},
		{"retain a string", &amqp.Message{MessageAnnotations: ann(AnnotationRetain, "true")}, 0, false, 0, true},
		{"negative delay", &amqp.Message{MessageAnnotations: ann(AnnotationWillDelay, int64(-1))}, 0, false, 0, true},
	} {
		q, err1 := QoS(c.m)
		r, err2 := Retain(c.m)
		d, err3 := WillDelay(c.m)
		gotErr := err1 != nil || err2 != nil || err3 != nil
		if gotErr != c.wantErr || (!gotErr && (q != c.qos || r != c.retain || d != c.delay)) {
			t.Errorf("%s: QoS %d %v, retain %v %v, delay %v %v; want %d %v %v, error %v", c.name, q, err1, r, err2, d, err3, c.qos, c.retain, c.delay, c.wantErr)
		}
	}
}

func TestPayload(t *testing.T) {
	for _, c := range []struct {
		name    string
		m       *amqp.Message
		want    string
		wantErr bool
	}{
		{"data", &amqp.Message{Data: [][]byte{[]byte("ab")}}, "ab", false},
		{"sections", &amqp.Message{Data: [][]byte{[]byte("a"), []byte("b")}}, "ab", false},
		{"value string", &amqp.Message{Value: "hi"}, "hi", false},
		{"value binary", &amqp.Message{Value: []byte("hi")}, "hi", false},
		{"value map", &amqp.Message{Value: map[string]any{}}, "", true},
		{"sequence", &amqp.Message{Sequence: [][]any{{1}}}, "", true},
		{"empty", &amqp.Message{}, "", false},
	} {
		got, err := Payload(c.m)
		if (err != nil) != c.wantErr || string(got) != c.want {
			t.Errorf("%s: %q, %v; want %q, error %v", c.name, got, err, c.want, c.wantErr)
		}
	}
}
