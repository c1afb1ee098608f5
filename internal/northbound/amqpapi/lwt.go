package amqpapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/amqp/frame"
	"github.com/ferry-iot/ferry/internal/amqpmqtt"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/mqtt/topic"
)

// LWTAddress is the address of the last-will service.
const LWTAddress = "$lwt"

// defaultWillTenant is the tenant of the wills of applications of every
// tenant, Hono's default tenant.
const defaultWillTenant = "DEFAULT_TENANT"

// willTenant is the tenant app's wills are published in.
func willTenant(app *Application) string {
	if len(app.Tenants) == 0 || app.Tenants[0] == "*" {
		return defaultWillTenant
	}
	return app.Tenants[0]
}

// handleLWT serves a link to $lwt.
func (s *Server) handleLWT(req *amqp.LinkRequest, app *Application) error {
	if s.opts.Wills == nil {
		return &amqp.Error{Condition: amqp.CondNotFound, Description: "no last-will service here"}
	}
	if req.Receiver == nil {
		return &amqp.Error{Condition: amqp.CondNotAllowed, Description: "$lwt takes will messages: attach a sender link named after your client id"}
	}
	rcv := req.Receiver
	tenant := willTenant(app)
	takeover := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rcv.CloseWithError(ctx, &amqp.Error{Condition: frame.CondStolen, Description: "another $lwt link of this client id attached"})
	}
	c := s.opts.Wills.Attach(tenant, req.Attach.Name, takeover)
	s.members.Add(1)
	go func() {
		defer s.members.Done()
		s.serveWills(tenant, req.Attach.Name, rcv, c)
	}()
	return nil
}

// willClient is what serveWills needs of a lastwill.Client.
type willClient interface {
	Set(m *hub.Message, delay time.Duration) error
	Clear() error
	Leave(lost bool)
	Abandon()
}

// serveWills reads a client's wills until its link ends, then lets the
// way it ended decide about the will.
func (s *Server) serveWills(tenant, clientID string, rcv *amqp.Receiver, c willClient) {
	ctx := context.Background()
	for {
		d, err := rcv.Receive(ctx)
		if err != nil {
			break
		}
		m, delay, err := parseWill(&d.Message, clientID)
		if err != nil {
			_ = d.Reject(ctx, &amqp.Error{Condition: amqp.CondInvalidField, Description: err.Error()})
			continue
		}
		if m == nil {
			err = c.Clear()
		} else {
			err = c.Set(m, delay)
		}
		if err != nil {
			s.log.Warn("will not stored", "tenant", tenant, "client", clientID, "err", err)
			_ = d.Reject(ctx, &amqp.Error{Condition: amqp.CondInternalError, Description: err.Error()})
			continue
		}
		_ = d.Accept(ctx)
	}
	err := rcv.Err()
	switch {
	case amqp.EndedCleanly(err):
		c.Leave(false)
	case errors.Is(err, amqp.ErrClosed):
		// Ferry closes the connection (shutting down), or the link was
		// taken over: not the client's doing.
		c.Abandon()
	default:
		s.log.Debug("will client lost", "tenant", tenant, "client", clientID, "err", err)
		c.Leave(true)
	}
}

// parseWill reads a will message; nil without error clears the will.
func parseWill(m *amqp.Message, clientID string) (*hub.Message, time.Duration, error) {
	var to, subject string
	var ct amqp.Symbol
	if p := m.Properties; p != nil {
		to, subject, ct = p.To, p.Subject, p.ContentType
	}
	payload, err := amqpmqtt.Payload(m)
	if err != nil {
		return nil, 0, err
	}
	switch subject {
	case "will-clear":
		return nil, 0, nil
	case "will", "":
	default:
		return nil, 0, fmt.Errorf("subject must be will or will-clear, not %q", subject)
	}
	if to == "" {
		if len(payload) == 0 {
			return nil, 0, nil
		}
		return nil, 0, errors.New("a will needs to (its topic)")
	}
	if err := topic.ValidateName(to); err != nil {
		return nil, 0, fmt.Errorf("to is no topic name: %w", err)
	}
	_, qos, retain, err := amqpmqtt.Fields(m)
	if err != nil {
		return nil, 0, err
	}
	delay, err := amqpmqtt.WillDelay(m)
	if err != nil {
		return nil, 0, err
	}
	w := &hub.Message{Topic: to, Payload: payload, QoS: qos, Retain: retain, ContentType: string(ct), Origin: clientID, Created: time.Now()}
	return w, delay, nil
}
