package gateway

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/amqpmqtt"
	"github.com/ferry-iot/ferry/mqtt"
	"github.com/ferry-iot/ferry/mqtt/packet"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// subscription is one MQTT subscription: a receiver link from the network.
type subscription struct {
	cl     *client
	filter string
	qos    byte
	rcv    *amqp.Receiver
	done   chan struct{} // closed when receive returns
	once   sync.Once
}

// subscribe attaches a receiver link for s; an existing subscription of
// the same filter is replaced [MQTT-3.8.4-3].
func (cl *client) subscribe(s packet.Subscription) packet.ReasonCode {
	if _, _, shared, _ := topic.ParseShared(s.Filter); shared {
		return packet.SharedSubscriptionsNotSupported // 3.1.1: 0x80
	}
	ctx, cancel := context.WithTimeout(cl.ctx, cl.g.opts.DialTimeout)
	defer cancel()
	opts := &amqp.ReceiverOptions{Name: cl.c.ClientID() + ":" + s.Filter, Credit: uint32(cl.g.opts.Window)}
	if cl.persistent {
		// A durable subscription under the container id (the client id)
		// and the link name, kept by the network for the session expiry.
		opts.SourceDurability = amqp.DurabilityConfiguration
		opts.SourceExpiryPolicy, opts.SourceTimeout = amqp.ExpiryLinkDetach, cl.expiry
		if cl.expiry == 0 {
			opts.SourceExpiryPolicy = amqp.ExpiryNever
		}
	}
	rcv, err := cl.sess.NewReceiver(ctx, cl.g.opts.Addresses.filter(s.Filter), opts)
	if err != nil {
		cl.g.log.Info("subscription refused by the AMQP network", "client", cl.c.ClientID(), "filter", s.Filter, "err", err)
		var le *amqp.LinkError
		if errors.As(err, &le) && le.RemoteErr != nil {
			switch le.RemoteErr.Condition {
			case amqp.CondUnauthorizedAccess:
				return packet.NotAuthorized
			case amqp.CondInvalidField, amqp.CondNotFound:
				return packet.TopicFilterInvalid
			case amqp.CondResourceLimitExceeded:
				return packet.QuotaExceeded
			}
		}
		return packet.UnspecifiedError
	}
	sub := &subscription{cl: cl, filter: s.Filter, qos: min(s.QoS, 2), rcv: rcv, done: make(chan struct{})}
	cl.mu.Lock()
	old := cl.subs[s.Filter]
	if cl.subs != nil {
		cl.subs[s.Filter] = sub
	}
	cl.mu.Unlock()
	if old != nil {
		old.stop()
	}
	go sub.receive()
	return packet.ReasonCode(sub.qos) // GrantedQoS0..2
}

// unsubscribe closes the filter's link.
func (cl *client) unsubscribe(filter string) bool {
	cl.mu.Lock()
	sub := cl.subs[filter]
	delete(cl.subs, filter)
	cl.mu.Unlock()
	if sub == nil {
		return false
	}
	sub.stop()
	return true
}

// stop detaches the link and waits for its receive loop.
func (s *subscription) stop() {
	s.once.Do(func() {
		ctx, cancel := closeCtx()
		defer cancel()
		_ = s.rcv.Close(ctx)
	})
	<-s.done
}

// receive hands the network's messages to the client, at most Window of
// them unacknowledged per client.
func (s *subscription) receive() {
	defer close(s.done)
	cl := s.cl
	for {
		select {
		case cl.window <- struct{}{}:
		case <-cl.ctx.Done():
			return
		}
		d, err := s.rcv.Receive(cl.ctx)
		if err != nil {
			<-cl.window
			if cl.ctx.Err() == nil && !errors.Is(err, amqp.ErrClosed) {
				// The network ended the subscription: MQTT cannot say
				// so, the client reconnects and subscribes again.
				cl.g.log.Warn("the AMQP network detached a subscription: disconnecting the client", "client", cl.c.ClientID(), "filter", s.filter, "err", err)
				cl.c.CloseWithReason(packet.ServerBusy, "the AMQP network ended the subscription to "+s.filter)
			}
			return
		}
		s.deliver(d)
	}
}

// deliver sends d to the client; it is settled with the network when the
// client acknowledged it (QoS 0: once queued).
func (s *subscription) deliver(d *amqp.Delivery) {
	cl := s.cl
	p, err := s.toMQTT(&d.Message)
	if err != nil {
		cl.g.counter.unroutable.Add(1)
		cl.g.log.Warn("message from the AMQP network not deliverable over MQTT: rejected", "client", cl.c.ClientID(), "filter", s.filter, "err", err)
		_ = d.Reject(cl.ctx, &amqp.Error{Condition: amqp.CondInvalidField, Description: err.Error()})
		<-cl.window
		return
	}
	if p.QoS == 0 {
		if err := cl.c.Send(p); errors.Is(err, mqtt.ErrQueueFull) {
			cl.g.counter.dropped.Add(1)
		} else if err == nil {
			cl.g.counter.delivered.Add(1)
		}
		_ = d.Accept(cl.ctx)
		<-cl.window
		return
	}
	cl.mu.Lock()
	cl.inflight[p] = d
	cl.mu.Unlock()
	if err := cl.c.Send(p); err != nil {
		// Closing, or no room: the network keeps it for someone else or
		// for later.
		cl.mu.Lock()
		delete(cl.inflight, p)
		cl.mu.Unlock()
		_ = d.Release(cl.ctx)
		<-cl.window
	}
}

// delivered settles the delivery of p, which the client acknowledged.
func (cl *client) delivered(p *packet.Publish) {
	cl.mu.Lock()
	d := cl.inflight[p]
	delete(cl.inflight, p)
	cl.mu.Unlock()
	if d == nil {
		return
	}
	cl.g.counter.delivered.Add(1)
	_ = d.Accept(cl.ctx)
	<-cl.window
}

// toMQTT is the PUBLISH of a message from the network: its topic from to
// (or the network's routing key, or the subscription's filter when it has
// no wildcard), QoS min(its own, granted), retained as annotated.
func (s *subscription) toMQTT(m *amqp.Message) (*packet.Publish, error) {
	payload, qos, retain, err := amqpmqtt.Fields(m)
	if err != nil {
		return nil, err
	}
	name, err := s.cl.g.opts.Addresses.topicOf(m, s.filter)
	if err != nil {
		return nil, err
	}
	p := &packet.Publish{Topic: name, QoS: min(qos, s.qos), Retain: retain, Payload: payload}
	if pr := m.Properties; pr != nil {
		p.Properties.ContentType = string(pr.ContentType)
		p.Properties.ResponseTopic = pr.ReplyTo
		p.Properties.CorrelationData = amqpmqtt.CorrelationData(pr)
	}
	if m.Header != nil && m.Header.TTL > 0 {
		sec := uint32((m.Header.TTL + 999_999_999) / 1e9)
		p.Properties.MessageExpiry = &sec
	}
	for k, v := range m.ApplicationProperties {
		if sv, ok := v.(string); ok && !strings.HasPrefix(k, "x-opt-") {
			p.Properties.User = append(p.Properties.User, packet.UserProperty{Key: k, Value: sv})
		}
	}
	return p, nil
}
