package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// responder routes the responses of Request to their callers.
type responder struct {
	sub sync.Mutex // serialises the subscription of the response topic

	mu         sync.Mutex
	topic      string
	subscribed bool
	pending    map[string]chan *Message
}

// forget marks the subscription lost, after a connection without session.
func (r *responder) forget() {
	r.mu.Lock()
	r.subscribed = false
	r.mu.Unlock()
}

// take hands m to the Request waiting for it and reports whether there was
// one.
func (r *responder) take(m *Message) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.topic == "" || m.Topic != r.topic || m.Properties.CorrelationData == nil {
		return false
	}
	key := string(m.Properties.CorrelationData)
	ch, ok := r.pending[key]
	if !ok {
		return false
	}
	delete(r.pending, key)
	ch <- m
	return true
}

// Request publishes payload to topic at QoS 1 with a Response Topic and a
// random Correlation Data (MQTT 5 section 4.10) and returns the first
// message that comes back on the response topic with the same correlation
// data. The first Request subscribes to the response topic at QoS 1 (and
// again after a connection without session): it is the server's Response
// Information followed by "/" and the client identifier when the server
// gave one (see Options.RequestResponseInfo), "response/" and the client
// identifier otherwise. A responder answers with
//
//	c.Publish(ctx, &client.Message{
//		Topic:      req.Properties.ResponseTopic,
//		Payload:    answer,
//		QoS:        1,
//		Properties: packet.Properties{CorrelationData: req.Properties.CorrelationData},
//	})
//
// Responses that arrive after ctx ended go to OnMessage.
func (c *Client) Request(ctx context.Context, topic string, payload []byte) (*Message, error) {
	if c.v != packet.V5 {
		return nil, errors.New("mqtt client: Request needs MQTT 5")
	}
	respTopic, err := c.responseTopic(ctx)
	if err != nil {
		return nil, err
	}
	corr := make([]byte, 16)
	rand.Read(corr)
	ch := make(chan *Message, 1)
	r := &c.resp
	r.mu.Lock()
	if r.pending == nil {
		r.pending = make(map[string]chan *Message)
	}
	r.pending[string(corr)] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, string(corr))
		r.mu.Unlock()
	}()
	err = c.Publish(ctx, &Message{
		Topic: topic, Payload: payload, QoS: 1,
		Properties: packet.Properties{ResponseTopic: respTopic, CorrelationData: corr},
	})
	if err != nil {
		return nil, err
	}
	select {
	case m := <-ch:
		if !bytes.Equal(m.Properties.CorrelationData, corr) {
			return nil, errors.New("mqtt client: response with foreign correlation data")
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, ErrClosed
	}
}

// responseTopic returns the response topic, subscribed.
func (c *Client) responseTopic(ctx context.Context) (string, error) {
	r := &c.resp
	r.sub.Lock()
	defer r.sub.Unlock()
	r.mu.Lock()
	t, ok := r.topic, r.subscribed
	r.mu.Unlock()
	if ok {
		return t, nil
	}
	c.mu.Lock()
	// Characters that would make the client identifier a wildcard or
	// several levels are replaced.
	id := strings.NewReplacer("/", "_", "+", "_", "#", "_").Replace(c.clientID)
	prefix := "response"
	if c.respInfo != "" {
		prefix = strings.TrimSuffix(c.respInfo, "/")
	}
	c.mu.Unlock()
	t = prefix + "/" + id
	ack, err := c.Subscribe(ctx, &packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: t, QoS: 1}}})
	if err != nil {
		return "", err
	}
	if code := ack.ReasonCodes[0]; code.IsError() {
		return "", fmt.Errorf("mqtt client: subscribing to the response topic %s: %v", t, code)
	}
	r.mu.Lock()
	r.topic, r.subscribed = t, true
	r.mu.Unlock()
	return t, nil
}
