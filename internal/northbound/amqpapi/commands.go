package amqpapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
)

// serveCommands reads an application's commands from its link on
// command/<tenant> and settles each with what became of it: accepted when
// the device took it, released when it could not be delivered, rejected
// when it is malformed. Commands are handled concurrently (each waits for
// its device); the link's credit bounds how many are outstanding.
func (s *Server) serveCommands(tenant string, rcv *amqp.Receiver) {
	// Receive returns once the link ends; cancel then ends the commands
	// still waiting for their device.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		d, err := rcv.Receive(ctx)
		if err != nil {
			return
		}
		cmd, ttl, err := s.parseCommand(tenant, &d.Message)
		if err != nil {
			_ = d.Reject(ctx, &amqp.Error{Condition: amqp.CondInvalidField, Description: err.Error()})
			continue
		}
		s.opts.Commands.Send(ctx, cmd, func(o command.Outcome) {
			settle(ctx, d, o)
			if o == command.Accepted {
				s.opts.Commands.ExpectResponse(cmd, ttl)
			}
		})
	}
}

func settle(ctx context.Context, d *amqp.Delivery, o command.Outcome) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch o {
	case command.Accepted:
		_ = d.Accept(ctx)
	case command.Rejected:
		_ = d.Reject(ctx, &amqp.Error{Condition: amqp.CondInvalidField, Description: "the device refused the command"})
	default:
		_ = d.Release(ctx)
	}
}

// parseCommand checks a command message (protocols.md 1.6: to, subject,
// and for request/response reply-to plus correlation-id or message-id)
// and returns it with its response timeout (the message's ttl).
func (s *Server) parseCommand(tenant string, m *amqp.Message) (*command.Command, time.Duration, error) {
	p := m.Properties
	if p == nil {
		return nil, 0, errors.New("a command needs properties: to, subject")
	}
	nb, ok := hono.ParseNorthbound(p.To)
	if !ok || nb.Endpoint != hono.Command || nb.Tenant != tenant || nb.Device == "" {
		return nil, 0, fmt.Errorf("to must be command/%s/<device-id>, not %q", tenant, p.To)
	}
	if p.Subject == "" {
		return nil, 0, errors.New("a command needs a subject (its name)")
	}
	cmd := &command.Command{Tenant: tenant, Device: nb.Device, Name: p.Subject, ContentType: string(p.ContentType)}
	if p.ReplyTo != "" {
		rb, ok := hono.ParseNorthbound(p.ReplyTo)
		if !ok || rb.Endpoint != hono.CommandResponse || rb.Tenant != tenant {
			return nil, 0, fmt.Errorf("reply-to must be command_response/%s/<reply-id>, not %q", tenant, p.ReplyTo)
		}
		cmd.ReplyID = rb.ReplyID
		id := p.CorrelationID
		if id == nil {
			id = p.MessageID
		}
		if id == nil {
			return nil, 0, errors.New("a request/response command needs a correlation-id or message-id")
		}
		corr, ok := id.(string)
		if !ok || corr == "" {
			// As Hono: the id travels in the device's topic as text, and
			// a response could not give back a UUID or ulong as such.
			return nil, 0, fmt.Errorf("the correlation-id (or message-id) must be a non-empty string, not %T", id)
		}
		cmd.CorrelationID = corr
		if _, err := hono.EncodeReqID(cmd.CorrelationID, cmd.ReplyID, cmd.Device, hono.MessagingAMQP); err != nil {
			return nil, 0, fmt.Errorf("the command's request id cannot be built: %w", err)
		}
	}
	switch {
	case len(m.Data) > 0:
		for _, b := range m.Data {
			cmd.Payload = append(cmd.Payload, b...)
		}
	case m.Value != nil:
		switch v := m.Value.(type) {
		case string:
			cmd.Payload = []byte(v)
		case []byte:
			cmd.Payload = v
		default:
			return nil, 0, fmt.Errorf("an amqp-value body must be a string or binary, not %T", v)
		}
	}
	var ttl time.Duration
	if m.Header != nil {
		ttl = m.Header.TTL
	}
	return cmd, ttl, nil
}

// responseSink sends responses to an application's receiver on
// command_response/<tenant>/<reply-id>.
type responseSink struct {
	snd *amqp.Sender
	s   *Server
}

func (r responseSink) Respond(resp *command.Response) bool {
	m := &amqp.Message{
		Properties: &amqp.Properties{
			CorrelationID: resp.CorrelationID,
			CreationTime:  time.Now(),
			ContentType:   amqp.Symbol(resp.ContentType),
		},
		ApplicationProperties: map[string]any{
			hono.PropDeviceID: resp.Device,
			hono.PropTenantID: resp.Tenant,
			hono.PropStatus:   int32(resp.Status),
		},
	}
	if len(resp.Payload) > 0 {
		m.Data = [][]byte{resp.Payload}
	}
	ok, err := r.snd.TrySend(m, nil, nil)
	if err != nil || !ok {
		r.s.log.Debug("command response not taken: the application's link has no credit", "tenant", resp.Tenant, "reply", resp.ReplyID)
		return false
	}
	return true
}
