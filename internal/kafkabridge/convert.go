package kafkabridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/amqp"
)

// converter turns messages into records and back, per link.
type converter struct{ json bool }

func converterOf(props map[amqp.Symbol]any) (converter, error) {
	v, ok := props[PropConverter]
	if !ok {
		return converter{}, nil
	}
	var name string
	switch s := v.(type) {
	case string:
		name = s
	case amqp.Symbol:
		name = string(s)
	}
	switch name {
	case "body":
		return converter{}, nil
	case "json":
		return converter{json: true}, nil
	}
	return converter{}, &amqp.Error{Condition: amqp.CondInvalidField, Description: fmt.Sprintf("link property %s: %v is not body or json", PropConverter, v)}
}

// record converts a message: its body the value, its application
// properties the headers (body), or the whole message as an envelope
// (json).
func (c converter) record(m *amqp.Message) (*kgo.Record, *amqp.Error) {
	if c.json {
		v, err := encodeEnvelope(m)
		if err != nil {
			return nil, &amqp.Error{Condition: amqp.CondDecodeError, Description: err.Error()}
		}
		return &kgo.Record{Value: v}, nil
	}
	v, _, err := bodyOf(m)
	if err != nil {
		return nil, &amqp.Error{Condition: amqp.CondDecodeError, Description: err.Error()}
	}
	rec := &kgo.Record{Value: v}
	for k, p := range m.ApplicationProperties {
		h, err := headerValue(p)
		if err != nil {
			return nil, &amqp.Error{Condition: amqp.CondDecodeError, Description: fmt.Sprintf("application property %q: %v", k, err)}
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: h})
	}
	return rec, nil
}

// bodyOf is a message's body as bytes: its data sections joined, or an
// amqp-value string or binary (text reports the string). No body is a
// null value (a tombstone on compacted topics).
func bodyOf(m *amqp.Message) (b []byte, text bool, err error) {
	switch {
	case len(m.Data) == 1:
		return m.Data[0], false, nil
	case len(m.Data) > 1:
		return bytes.Join(m.Data, nil), false, nil
	case len(m.Sequence) > 0:
		return nil, false, errors.New("an amqp-sequence body has no Kafka form: send data or an amqp-value string or binary")
	}
	switch v := m.Value.(type) {
	case nil:
		return nil, false, nil
	case string:
		return []byte(v), true, nil
	case []byte:
		return v, false, nil
	}
	return nil, false, fmt.Errorf("an amqp-value body of %T has no Kafka form: send data or an amqp-value string or binary", m.Value)
}

// headerValue is an application property as a header: strings as they
// are, other scalars in their JSON form (as Hono's headers).
func headerValue(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	}
	j, err := jsonValue(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(j)
}

// message converts a record into what the link sends: the value as a data
// section and the headers as application properties (body), or the
// envelope the value holds (json; a value that is none converts as
// body). Both carry the record's topic, partition, offset and key as
// annotations.
func (c converter) message(r *kgo.Record) *amqp.Message {
	var m *amqp.Message
	if c.json {
		if e, err := decodeEnvelope(r.Value); err == nil {
			m = e
		}
	}
	if m == nil {
		m = &amqp.Message{Data: [][]byte{r.Value}}
		if !r.Timestamp.IsZero() {
			m.Properties = &amqp.Properties{CreationTime: r.Timestamp}
		}
		for _, h := range r.Headers {
			if m.ApplicationProperties == nil {
				m.ApplicationProperties = make(map[string]any, len(r.Headers))
			}
			if _, dup := m.ApplicationProperties[h.Key]; !dup {
				m.ApplicationProperties[h.Key] = string(h.Value)
			}
		}
	}
	if m.MessageAnnotations == nil {
		m.MessageAnnotations = make(amqp.Annotations, 4)
	}
	m.MessageAnnotations[AnnotationTopic] = r.Topic
	m.MessageAnnotations[AnnotationPartition] = r.Partition
	m.MessageAnnotations[AnnotationOffset] = r.Offset
	if r.Key != nil {
		if utf8.Valid(r.Key) {
			m.MessageAnnotations[AnnotationKey] = string(r.Key)
		} else {
			m.MessageAnnotations[AnnotationKey] = r.Key
		}
	}
	return m
}

// envelope is the JSON form of a whole message (Strimzi's JSON
// converter): body type "data" has the bytes in base64, type "value" an
// amqp-value string.
type envelope struct {
	Properties            *jsonProperties `json:"properties,omitempty"`
	ApplicationProperties map[string]any  `json:"applicationProperties,omitempty"`
	MessageAnnotations    map[string]any  `json:"messageAnnotations,omitempty"`
	Body                  *jsonBody       `json:"body,omitempty"`
}

type jsonBody struct {
	Type    string `json:"type"`
	Section string `json:"section"`
}

// jsonProperties are the properties section; times are Unix
// milliseconds, ids strings or unsigned numbers.
type jsonProperties struct {
	MessageID          any     `json:"messageId,omitempty"`
	UserID             []byte  `json:"userId,omitempty"`
	To                 string  `json:"to,omitempty"`
	Subject            string  `json:"subject,omitempty"`
	ReplyTo            string  `json:"replyTo,omitempty"`
	CorrelationID      any     `json:"correlationId,omitempty"`
	ContentType        string  `json:"contentType,omitempty"`
	ContentEncoding    string  `json:"contentEncoding,omitempty"`
	AbsoluteExpiryTime int64   `json:"absoluteExpiryTime,omitempty"`
	CreationTime       int64   `json:"creationTime,omitempty"`
	GroupID            string  `json:"groupId,omitempty"`
	GroupSequence      *uint32 `json:"groupSequence,omitempty"`
	ReplyToGroupID     string  `json:"replyToGroupId,omitempty"`
}

// Body types of the envelope.
const (
	bodyData  = "data"
	bodyValue = "value"
)

func encodeEnvelope(m *amqp.Message) ([]byte, error) {
	var e envelope
	b, text, err := bodyOf(m)
	if err != nil {
		return nil, err
	}
	switch {
	case text:
		e.Body = &jsonBody{Type: bodyValue, Section: string(b)}
	case b != nil:
		e.Body = &jsonBody{Type: bodyData, Section: base64.StdEncoding.EncodeToString(b)}
	}
	if p := m.Properties; p != nil {
		jp := &jsonProperties{UserID: p.UserID, To: p.To, Subject: p.Subject, ReplyTo: p.ReplyTo,
			ContentType: string(p.ContentType), ContentEncoding: string(p.ContentEncoding),
			GroupID: p.GroupID, GroupSequence: p.GroupSequence, ReplyToGroupID: p.ReplyToGroupID}
		if jp.MessageID, err = jsonID(p.MessageID); err != nil {
			return nil, fmt.Errorf("message-id: %w", err)
		}
		if jp.CorrelationID, err = jsonID(p.CorrelationID); err != nil {
			return nil, fmt.Errorf("correlation-id: %w", err)
		}
		if !p.AbsoluteExpiryTime.IsZero() {
			jp.AbsoluteExpiryTime = p.AbsoluteExpiryTime.UnixMilli()
		}
		if !p.CreationTime.IsZero() {
			jp.CreationTime = p.CreationTime.UnixMilli()
		}
		e.Properties = jp
	}
	for k, v := range m.ApplicationProperties {
		j, err := jsonValue(v)
		if err != nil {
			return nil, fmt.Errorf("application property %q: %w", k, err)
		}
		if e.ApplicationProperties == nil {
			e.ApplicationProperties = make(map[string]any, len(m.ApplicationProperties))
		}
		e.ApplicationProperties[k] = j
	}
	for k, v := range m.MessageAnnotations {
		var key string
		switch k := k.(type) {
		case amqp.Symbol:
			key = string(k)
		case string:
			key = k
		default:
			return nil, fmt.Errorf("message annotation key %v: only symbols have a JSON form", k)
		}
		j, err := jsonValue(v)
		if err != nil {
			return nil, fmt.Errorf("message annotation %q: %w", key, err)
		}
		if e.MessageAnnotations == nil {
			e.MessageAnnotations = make(map[string]any, len(m.MessageAnnotations))
		}
		e.MessageAnnotations[key] = j
	}
	return json.Marshal(&e)
}

// jsonID is a message or correlation id in JSON: strings and ulongs as
// they are, UUIDs in their text form.
func jsonID(id any) (any, error) {
	switch v := id.(type) {
	case nil, string, uint64:
		return v, nil
	case fmt.Stringer: // amqp's UUID
		return v.String(), nil
	}
	return nil, fmt.Errorf("%T has no JSON form", id)
}

// jsonValue is a property or annotation value in JSON: scalars as they
// are, symbols and UUIDs as strings, timestamps in Unix milliseconds,
// binary in base64.
func jsonValue(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, string, int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return v, nil
	case float32:
		return jsonFloat(float64(v))
	case float64:
		return jsonFloat(v)
	case amqp.Symbol:
		return string(v), nil
	case time.Time:
		return v.UnixMilli(), nil
	case []byte:
		return base64.StdEncoding.EncodeToString(v), nil
	case fmt.Stringer:
		return v.String(), nil
	}
	return nil, fmt.Errorf("%T has no JSON form", v)
}

func jsonFloat(f float64) (any, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("%v has no JSON form", f)
	}
	return f, nil
}

// maxEnvelope bounds the values decodeEnvelope takes on, against a
// hostile record exhausting memory while decoding.
const maxEnvelope = 16 << 20

// decodeEnvelope parses a record value made by encodeEnvelope (or by
// another client in the same form).
func decodeEnvelope(b []byte) (*amqp.Message, error) {
	if len(b) > maxEnvelope {
		return nil, fmt.Errorf("envelope of %d bytes, more than %d", len(b), maxEnvelope)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var e envelope
	if err := d.Decode(&e); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("data after the envelope")
	}
	m := &amqp.Message{}
	if e.Body != nil {
		switch e.Body.Type {
		case bodyData:
			v, err := base64.StdEncoding.DecodeString(e.Body.Section)
			if err != nil {
				return nil, fmt.Errorf("body section: %w", err)
			}
			m.Data = [][]byte{v}
		case bodyValue:
			m.Value = e.Body.Section
		default:
			return nil, fmt.Errorf("body type %q is not data or value", e.Body.Type)
		}
	}
	if jp := e.Properties; jp != nil {
		p := &amqp.Properties{UserID: jp.UserID, To: jp.To, Subject: jp.Subject, ReplyTo: jp.ReplyTo,
			ContentType: amqp.Symbol(jp.ContentType), ContentEncoding: amqp.Symbol(jp.ContentEncoding),
			GroupID: jp.GroupID, GroupSequence: jp.GroupSequence, ReplyToGroupID: jp.ReplyToGroupID}
		var err error
		if p.MessageID, err = amqpID(jp.MessageID); err != nil {
			return nil, fmt.Errorf("messageId: %w", err)
		}
		if p.CorrelationID, err = amqpID(jp.CorrelationID); err != nil {
			return nil, fmt.Errorf("correlationId: %w", err)
		}
		if jp.AbsoluteExpiryTime != 0 {
			p.AbsoluteExpiryTime = time.UnixMilli(jp.AbsoluteExpiryTime)
		}
		if jp.CreationTime != 0 {
			p.CreationTime = time.UnixMilli(jp.CreationTime)
		}
		m.Properties = p
	}
	for k, v := range e.ApplicationProperties {
		a, err := amqpValue(v)
		if err != nil {
			return nil, fmt.Errorf("applicationProperties %q: %w", k, err)
		}
		if m.ApplicationProperties == nil {
			m.ApplicationProperties = make(map[string]any, len(e.ApplicationProperties))
		}
		m.ApplicationProperties[k] = a
	}
	for k, v := range e.MessageAnnotations {
		a, err := amqpValue(v)
		if err != nil {
			return nil, fmt.Errorf("messageAnnotations %q: %w", k, err)
		}
		if m.MessageAnnotations == nil {
			m.MessageAnnotations = make(amqp.Annotations, len(e.MessageAnnotations))
		}
		m.MessageAnnotations[amqp.Symbol(k)] = a
	}
	return m, nil
}

// amqpID is an id from JSON: a string, or a number that fits a ulong.
func amqpID(v any) (any, error) {
	switch v := v.(type) {
	case nil, string:
		return v, nil
	case json.Number:
		n, err := strconv.ParseUint(v.String(), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not a ulong", v)
		}
		return n, nil
	}
	return nil, fmt.Errorf("%T is not a string or ulong", v)
}

// amqpValue is a JSON scalar as an AMQP value: integers as longs, other
// numbers as doubles. Objects and arrays have no AMQP form here.
func amqpValue(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, string:
		return v, nil
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s is not a number", v)
		}
		return f, nil
	}
	return nil, fmt.Errorf("%T is not a JSON scalar", v)
}
