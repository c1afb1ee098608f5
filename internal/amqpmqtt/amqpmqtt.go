// Package amqpmqtt holds the conventions of MQTT messages carried over AMQP
// 1.0 that EnMasse's MQTT gateway and last-will service introduced
// (protocols.md 2.3, 2.4) and that Ferry's AMQP topic links, last-will
// service and gateway share: the annotations naming the MQTT QoS, the
// retain flag and a will's delay, and where an MQTT payload sits in an
// AMQP message.
package amqpmqtt

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ferry-iot/ferry/amqp"
)

// Message annotations; WillDelay is Ferry's.
const (
	AnnotationRetain    amqp.Symbol = "x-opt-retain-message"
	AnnotationQoS       amqp.Symbol = "x-opt-mqtt-qos"
	AnnotationWillDelay amqp.Symbol = "x-opt-will-delay"
)

// QoS is the MQTT QoS of m: its x-opt-mqtt-qos annotation or, for a native
// AMQP sender without it, 1 for a durable message and 0 otherwise.
func QoS(m *amqp.Message) (byte, error) {
	if v, ok := m.MessageAnnotations.Get(AnnotationQoS); ok {
		q, ok := amqp.Integer(v)
		if !ok || q < 0 || q > 2 {
			return 0, fmt.Errorf("%s must be 0, 1 or 2, not %v", AnnotationQoS, v)
		}
		return byte(q), nil
	}
	if m.Header != nil && m.Header.Durable {
		return 1, nil
	}
	return 0, nil
}

// Retain is m's x-opt-retain-message annotation; false without it.
func Retain(m *amqp.Message) (bool, error) {
	v, ok := m.MessageAnnotations.Get(AnnotationRetain)
	if !ok {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s must be a boolean, not %T", AnnotationRetain, v)
	}
	return b, nil
}

// WillDelay is m's x-opt-will-delay annotation, in seconds; 0 without it.
func WillDelay(m *amqp.Message) (time.Duration, error) {
	v, ok := m.MessageAnnotations.Get(AnnotationWillDelay)
	if !ok {
		return 0, nil
	}
	sec, ok := amqp.Integer(v)
	if !ok || sec < 0 || sec > math.MaxInt64/int64(time.Second) {
		return 0, fmt.Errorf("%s must be a number of seconds, not %v", AnnotationWillDelay, v)
	}
	return time.Duration(sec) * time.Second, nil
}

// Payload is m's body as an MQTT payload: its data sections, or an
// amqp-value string or binary.
func Payload(m *amqp.Message) ([]byte, error) {
	switch {
	case len(m.Data) == 1:
		return m.Data[0], nil
	case len(m.Data) > 1:
		var b []byte
		for _, d := range m.Data {
			b = append(b, d...)
		}
		return b, nil
	case m.Value != nil:
		switch v := m.Value.(type) {
		case string:
			return []byte(v), nil
		case []byte:
			return v, nil
		}
		return nil, fmt.Errorf("an amqp-value body must be a string or binary, not %T", m.Value)
	case len(m.Sequence) > 0:
		return nil, errors.New("an amqp-sequence body has no MQTT payload: send data")
	}
	return nil, nil
}

// Fields are the MQTT payload, QoS and retain flag of m (Payload, QoS,
// Retain).
func Fields(m *amqp.Message) (payload []byte, qos byte, retain bool, err error) {
	if payload, err = Payload(m); err != nil {
		return nil, 0, false, err
	}
	if qos, err = QoS(m); err != nil {
		return nil, 0, false, err
	}
	if retain, err = Retain(m); err != nil {
		return nil, 0, false, err
	}
	return payload, qos, retain, nil
}

// CorrelationData is MQTT 5's correlation data from an AMQP
// correlation-id: a binary or string one; nil for none or another type.
func CorrelationData(p *amqp.Properties) []byte {
	if p == nil {
		return nil
	}
	switch c := p.CorrelationID.(type) {
	case []byte:
		return c
	case string:
		return []byte(c)
	}
	return nil
}

// Annotations are the annotations of an MQTT message with qos and retain.
func Annotations(qos byte, retain bool) amqp.Annotations {
	return amqp.Annotations{AnnotationQoS: int32(qos), AnnotationRetain: retain}
}
