package amqpapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/amqpmqtt"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// handleTopic serves a link whose address is an MQTT topic (a receiver's
// source may be a filter with wildcards) in app's tenant: what EnMasse's
// subscription service gave AMQP clients.
func (s *Server) handleTopic(req *amqp.LinkRequest, app *Application) error {
	tenant := willTenant(app)
	if req.Receiver != nil {
		to := req.Address
		if to != "" {
			if err := publishable(to); err != nil {
				return &amqp.Error{Condition: amqp.CondInvalidField, Description: err.Error()}
			}
		}
		s.members.Add(1)
		go func() {
			defer s.members.Done()
			s.servePublisher(tenant, to, req.Conn.ContainerID(), req.Receiver)
		}()
		return nil
	}
	filter := req.Address
	if err := topic.ValidateFilter(filter); err != nil {
		return &amqp.Error{Condition: amqp.CondInvalidField, Description: fmt.Sprintf("source address %q is no MQTT topic filter: %v", filter, err)}
	}
	if strings.HasPrefix(filter, "$share/") {
		return &amqp.Error{Condition: amqp.CondNotImplemented, Description: "shared subscriptions are MQTT's; AMQP receivers share a Hono address by subscription-name"}
	}
	if hono.Reserved(filter) {
		return &amqp.Error{Condition: amqp.CondUnauthorizedAccess, Description: fmt.Sprintf("%q is Ferry's own", filter)}
	}
	keep := durability(req.Attach.Source)
	durable := keep > 0
	var name string
	if durable {
		if req.Conn.ContainerID() == "" || req.Attach.Name == "" {
			return &amqp.Error{Condition: amqp.CondInvalidField, Description: "a durable subscription needs a container-id and a link name"}
		}
		name = req.Conn.ContainerID() + "/" + req.Attach.Name
	} else {
		name = "link-" + strconv.FormatUint(s.topicLinks.Add(1), 10)
	}
	g := &group{srv: s, key: groupKey{tenant: tenant, name: name, topic: true}, filter: filter, keep: keep}
	err := s.joinGroup(g, req.Sender, !durable, func(sess *hub.Session) ([]hub.Delivery, error) {
		return subscribeTopic(sess, filter, keep)
	})
	switch {
	case errors.Is(err, errOtherFilter):
		return &amqp.Error{Condition: amqp.CondNotAllowed, Description: fmt.Sprintf("subscription %q is attached already with another source address", req.Attach.Name)}
	case errors.Is(err, hub.ErrTooManySubscriptions):
		return &amqp.Error{Condition: amqp.CondResourceLimitExceeded, Description: err.Error()}
	case err != nil:
		s.log.Error("topic link refused: subscription not stored", "tenant", tenant, "filter", filter, "err", err)
		return &amqp.Error{Condition: amqp.CondInternalError, Description: "subscription not stored"}
	}
	return nil
}

// durability is how long a receiver's source asks its subscription to
// outlive the link: for ever with expiry policy never, its timeout with
// another policy; 0 for a source that is not durable.
func durability(src *amqp.Source) time.Duration {
	switch {
	case src == nil || src.Durable == amqp.DurabilityNone:
		return 0
	case src.ExpiryPolicy == amqp.ExpiryNever:
		return hub.Forever
	}
	return time.Duration(src.Timeout) * time.Second
}

// subscribeTopic prepares a topic link's session: a durable one is kept in
// the store and, when it comes back, keeps its backlog and gets retained
// messages only if its filter is new; a previous filter is dropped.
func subscribeTopic(sess *hub.Session, filter string, keep time.Duration) ([]hub.Delivery, error) {
	var handling byte // retained messages on every attach
	if keep > 0 {
		if err := sess.MakeDurable(keep); err != nil {
			return nil, err
		}
		handling = 1
		for _, sub := range sess.Subscriptions() {
			if sub.Filter != filter {
				sess.Unsubscribe(sub.Filter)
			}
		}
	}
	return sess.Subscribe(hub.Subscription{Filter: filter, QoS: 2, RetainHandling: handling})
}

// publishable checks a topic an AMQP client sends to.
func publishable(to string) error {
	if err := topic.ValidateName(to); err != nil {
		return fmt.Errorf("%q is no MQTT topic name: %w", to, err)
	}
	if strings.HasPrefix(to, "$") {
		return fmt.Errorf("%q is the server's: topics starting with $ take no messages", to)
	}
	return nil
}

// servePublisher publishes what a sender link to a topic (or, with to "",
// to the anonymous relay: each message's to) sends, and settles each
// message once the hub took it: accepted when every copy is kept,
// rejected when it cannot be (a full queue, a store failure).
func (s *Server) servePublisher(tenant, to, origin string, rcv *amqp.Receiver) {
	ctx := context.Background()
	for {
		d, err := rcv.Receive(ctx)
		if err != nil {
			return
		}
		m, err := topicPublish(&d.Message, to, origin)
		if err != nil {
			_ = d.Reject(ctx, &amqp.Error{Condition: amqp.CondInvalidField, Description: err.Error()})
			continue
		}
		s.opts.Hub.PublishAsync(tenant, m, func(res hub.Result) {
			switch {
			case res.Err != nil:
				s.log.Error("message from AMQP not stored", "tenant", tenant, "topic", m.Topic, "err", res.Err)
				_ = d.Reject(ctx, &amqp.Error{Condition: amqp.CondInternalError, Description: "not stored"})
			case res.Lost > 0 && m.QoS > 0:
				_ = d.Reject(ctx, &amqp.Error{Condition: amqp.CondResourceLimitExceeded, Description: "a subscriber's queue is full"})
			case res.RetainRefused:
				_ = d.Reject(ctx, &amqp.Error{Condition: amqp.CondResourceLimitExceeded, Description: "delivered, but not retained: the tenant holds the most retained messages it may"})
			default:
				_ = d.Accept(ctx)
			}
		})
	}
}

// topicPublish turns an AMQP message for a topic into a hub message, as
// EnMasse's gateway did (protocols.md 2.3): the topic is the link's
// address or the message's to, x-opt-mqtt-qos the QoS (without it, a
// durable message is QoS 1, others QoS 0), x-opt-retain-message the
// retain flag.
func topicPublish(am *amqp.Message, to, origin string) (*hub.Message, error) {
	p := am.Properties
	if p == nil {
		p = &amqp.Properties{}
	}
	if to == "" {
		if err := publishable(p.To); err != nil {
			return nil, fmt.Errorf("to: %w", err)
		}
		to = p.To
	}
	payload, qos, retain, err := amqpmqtt.Fields(am)
	if err != nil {
		return nil, err
	}
	m := &hub.Message{Topic: to, Payload: payload, QoS: qos, Retain: retain, ContentType: string(p.ContentType), ResponseTopic: p.ReplyTo,
		CorrelationData: amqpmqtt.CorrelationData(p), Origin: origin, Created: time.Now()}
	if am.Header != nil && am.Header.TTL > 0 {
		m.Expiry = m.Created.Add(am.Header.TTL)
	}
	if !p.AbsoluteExpiryTime.IsZero() && (m.Expiry.IsZero() || p.AbsoluteExpiryTime.Before(m.Expiry)) {
		m.Expiry = p.AbsoluteExpiryTime
	}
	for k, v := range am.ApplicationProperties {
		if sv, ok := v.(string); ok {
			m.UserProperties = append(m.UserProperties, hub.UserProperty{Key: k, Value: sv})
		}
	}
	return m, nil
}

// topicForm is the encoded AMQP form of a plain delivery of a topic
// message, shared by every topic link that gets it.
type topicForm []byte

// topicEncoded is d encoded for a topic link. A delivery as published (its
// QoS, not retained, not a resend, no expiry whose ttl would age) is
// encoded once for all the links it fans out to.
func topicEncoded(d hub.Delivery) ([]byte, error) {
	m := d.Message
	if d.QoS != m.QoS || d.Retain || d.Dup || !m.Expiry.IsZero() {
		return topicMessage(d).AppendTo(nil)
	}
	v := m.SharedForm(func() any {
		b, err := topicMessage(d).AppendTo(nil)
		if err != nil {
			return nil // not kept: each delivery hears the error below
		}
		return topicForm(b)
	})
	if f, ok := v.(topicForm); ok {
		return f, nil
	}
	// Another front end's form is there, or encoding failed.
	return topicMessage(d).AppendTo(nil)
}

// topicMessage is a hub delivery as a topic link's receiver gets it:
// to = the topic, the QoS and retain flag as annotations, durable when
// QoS > 0, MQTT 5's properties in their AMQP places.
func topicMessage(d hub.Delivery) *amqp.Message {
	m := d.Message
	am := &amqp.Message{
		Header:             &amqp.MessageHeader{Durable: d.QoS > 0, Priority: 4},
		MessageAnnotations: amqpmqtt.Annotations(d.QoS, d.Retain),
		Properties:         &amqp.Properties{To: m.Topic, ReplyTo: m.ResponseTopic, ContentType: amqp.Symbol(m.ContentType), CreationTime: m.Created},
		Data:               [][]byte{m.Payload},
	}
	if d.Dup {
		am.Header.DeliveryCount = 1
	}
	if !m.Expiry.IsZero() {
		ttl := time.Until(m.Expiry)
		if ttl <= 0 {
			ttl = time.Millisecond
		}
		am.Header.TTL = ttl
	}
	if len(m.CorrelationData) > 0 {
		am.Properties.CorrelationID = m.CorrelationData
	}
	if len(m.UserProperties) > 0 {
		am.ApplicationProperties = make(map[string]any, len(m.UserProperties))
		for _, u := range m.UserProperties {
			am.ApplicationProperties[u.Key] = u.Value
		}
	}
	return am
}
