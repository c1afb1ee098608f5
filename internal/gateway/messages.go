package gateway

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/amqpmqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// Addresses is how MQTT topics map to the network's AMQP addresses.
type Addresses string

const (
	// AddressesMQTT uses the topic name and filter verbatim as the address,
	// as EnMasse's network and Ferry's own AMQP listener (wildcards and
	// all) do.
	AddressesMQTT Addresses = "mqtt"
	// AddressesRabbitMQ uses RabbitMQ's topic exchange: a topic a/b goes to
	// /topic/a.b, a filter a/+/# subscribes to /topic/a.*.#, as
	// RabbitMQ's own MQTT plugin maps them.
	AddressesRabbitMQ Addresses = "rabbitmq"
)

const rabbitTopic = "/topic/"

// topic is the address a topic's messages go to.
func (a Addresses) topic(name string) string {
	if a == AddressesRabbitMQ {
		return rabbitTopic + rabbitKey(name)
	}
	return name
}

// filter is the source address of a subscription.
func (a Addresses) filter(f string) string {
	if a != AddressesRabbitMQ {
		return f
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if l == "+" {
			levels[i] = "*"
		} else {
			levels[i] = rabbitKey(l)
		}
	}
	return rabbitTopic + strings.Join(levels, ".")
}

// rabbitKey swaps / and ., as RabbitMQ's MQTT plugin does, so that both
// plugins' clients share topics.
func rabbitKey(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, s)
}

// routingKeyAnnotation is where RabbitMQ puts a message's routing key.
const routingKeyAnnotation amqp.Symbol = "x-routing-key"

// topicOf is the MQTT topic of a message from the network.
func (a Addresses) topicOf(m *amqp.Message, filter string) (string, error) {
	var name string
	if m.Properties != nil && m.Properties.To != "" {
		name = m.Properties.To
		if a == AddressesRabbitMQ {
			if k, ok := strings.CutPrefix(name, rabbitTopic); ok {
				name = rabbitKey(k)
			}
		}
	} else if v, ok := m.MessageAnnotations.Get(routingKeyAnnotation); ok && a == AddressesRabbitMQ {
		if k, ok := v.(string); ok {
			name = rabbitKey(k)
		}
	} else if !strings.ContainsAny(filter, "+#") {
		name = filter
	}
	if name == "" {
		return "", errors.New("the message names no topic (to)")
	}
	if err := topic.ValidateName(name); err != nil {
		return "", fmt.Errorf("its to %q is no MQTT topic: %w", name, err)
	}
	return name, nil
}

// toAMQP is the AMQP message of a PUBLISH (protocols.md 2.3).
func toAMQP(p *packet.Publish) *amqp.Message {
	m := &amqp.Message{
		Header:             &amqp.MessageHeader{Durable: p.QoS > 0, Priority: 4},
		MessageAnnotations: amqpmqtt.Annotations(p.QoS, p.Retain),
		Properties: &amqp.Properties{
			To:          p.Topic,
			ContentType: amqp.Symbol(p.Properties.ContentType),
			ReplyTo:     p.Properties.ResponseTopic,
		},
		Data: [][]byte{slices.Clone(p.Payload)},
	}
	if p.Properties.CorrelationData != nil {
		m.Properties.CorrelationID = slices.Clone(p.Properties.CorrelationData)
	}
	if e := p.Properties.MessageExpiry; e != nil {
		m.Header.TTL = time.Duration(*e) * time.Second
	}
	if len(p.Properties.User) > 0 {
		m.ApplicationProperties = make(map[string]any, len(p.Properties.User))
		for _, u := range p.Properties.User {
			m.ApplicationProperties[u.Key] = u.Value
		}
	}
	return m
}

// willMessage is the AMQP_WILL of a CONNECT's will (2.4, step 1).
func willMessage(p *packet.Connect) *amqp.Message {
	m := toAMQP(&packet.Publish{Topic: p.WillTopic, QoS: p.WillQoS, Retain: p.WillRetain, Payload: p.WillPayload, Properties: p.WillProperties})
	m.Properties.Subject = "will"
	if d := p.WillProperties.WillDelayInterval; d != nil {
		m.MessageAnnotations[amqpmqtt.AnnotationWillDelay] = int64(*d)
	}
	return m
}

// senderCache holds a client's sender links by address and settle mode,
// closing the least recently used beyond its bound. Owned by the
// publisher goroutine.
type senderCache struct {
	max   int
	order *list.List // of *cachedSender, most recent first
	byKey map[senderKey]*list.Element
}

type senderKey struct {
	addr   string
	second bool
}

type cachedSender struct {
	key senderKey
	snd *amqp.Sender
}

func newSenderCache(max int) *senderCache {
	return &senderCache{max: max, order: list.New(), byKey: map[senderKey]*list.Element{}}
}

// get returns the sender of addr, attaching it with attach when there is
// none or the old one ended.
func (c *senderCache) get(addr string, second bool, attach func() (*amqp.Sender, error)) (*amqp.Sender, error) {
	k := senderKey{addr, second}
	if e, ok := c.byKey[k]; ok {
		cs := e.Value.(*cachedSender)
		select {
		case <-cs.snd.Done():
			c.order.Remove(e)
			delete(c.byKey, k)
		default:
			c.order.MoveToFront(e)
			return cs.snd, nil
		}
	}
	snd, err := attach()
	if err != nil {
		return nil, err
	}
	c.byKey[k] = c.order.PushFront(&cachedSender{key: k, snd: snd})
	for c.order.Len() > c.max {
		e := c.order.Back()
		cs := e.Value.(*cachedSender)
		c.order.Remove(e)
		delete(c.byKey, cs.key)
		closeSender(cs.snd)
	}
	return snd, nil
}

// drop forgets snd (it ended).
func (c *senderCache) drop(snd *amqp.Sender) {
	for k, e := range c.byKey {
		if e.Value.(*cachedSender).snd == snd {
			c.order.Remove(e)
			delete(c.byKey, k)
			return
		}
	}
}

// closeAll forgets the senders: the connection's close ends them.
func (c *senderCache) closeAll() {
	c.byKey = nil
	c.order.Init()
}

// closeSender detaches snd, after the outcomes of what it sent.
func closeSender(snd *amqp.Sender) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = snd.Close(ctx)
}
