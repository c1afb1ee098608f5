package coapadapter

import (
	"bytes"
	"context"
	"log/slog"
	"mime"
	"strings"
	"sync"
	"time"

	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/monitor/inactivity"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	udpserver "github.com/plgd-dev/go-coap/v3/udp/server"

	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
)

// idleTimeout is go-coap's default: a connection (for DTLS, the session)
// with no traffic for this long is closed.
const idleTimeout = 16 * time.Second

// waiting counts, per connection, the requests that wait for a command,
// so that the connection is not closed as idle under them: a device that
// waits sends nothing until it gets its answer.
type waiting struct {
	mu sync.Mutex
	n  map[mux.Conn]int
}

func (w *waiting) add(cc mux.Conn, d int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == nil {
		w.n = map[mux.Conn]int{}
	}
	w.n[cc] += d
	if w.n[cc] <= 0 {
		delete(w.n, cc)
	}
}

func (w *waiting) has(cc mux.Conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n[cc] > 0
}

// keepWhileWaiting is an inactivity monitor that counts a waiting request
// as activity.
type keepWhileWaiting struct {
	udpclient.InactivityMonitor
	w *waiting
}

func (m keepWhileWaiting) CheckInactivity(now time.Time, cc *udpclient.Conn) {
	if m.w.has(cc) {
		m.Notify()
		return
	}
	m.InactivityMonitor.CheckInactivity(now, cc)
}

// idleOption installs keepWhileWaiting on the UDP and the DTLS server.
type idleOption struct{ w *waiting }

func (o idleOption) monitor() udpclient.InactivityMonitor {
	idle := inactivity.New(idleTimeout, func(cc *udpclient.Conn) { _ = cc.Close() })
	return udpclient.DeferInactivityWhileConfirmableMessagesPending(keepWhileWaiting{idle, o.w})
}

func (o idleOption) UDPServerApply(cfg *udpserver.Config)   { cfg.CreateInactivityMonitor = o.monitor }
func (o idleOption) DTLSServerApply(cfg *dtlsserver.Config) { cfg.CreateInactivityMonitor = o.monitor }

// setCommand makes m the answer of a waiting request that got cmd:
// 2.04 with the command's payload, its content-format when CoAP has a
// number for it, Location-Query hono-command=<name> and the
// Location-Path the device answers on. false: the command cannot be
// handed to a CoAP device (no request id fits), and m is left alone.
func setCommand(m *pool.Message, cmd *command.Command, long bool, loginDevice string) bool {
	var reqID string
	if !cmd.OneWay() {
		var err error
		reqID, err = hono.EncodeReqID(cmd.CorrelationID, cmd.ReplyID, cmd.Device, cmd.Messaging)
		if err != nil {
			return false
		}
	}
	m.SetCode(codes.Changed)
	for _, seg := range commandLocation(cmd, reqID, long, loginDevice) {
		m.AddOptionString(message.LocationPath, seg)
	}
	m.AddOptionString(message.LocationQuery, "hono-command="+cmd.Name)
	if mt, ok := mediaType(cmd.ContentType); ok {
		m.SetContentFormat(mt)
	}
	if len(cmd.Payload) > 0 {
		m.SetBody(bytes.NewReader(cmd.Payload))
	}
	return true
}

// waitRequest is what a request that waits for a command needs once its
// handler has returned and go-coap has recycled the request.
type waitRequest struct {
	cc          mux.Conn
	token       message.Token
	confirmable bool
	long        bool
	loginDevice string
	ttd         time.Duration
	waiter      *command.Waiter
	cancel      func()
}

// answerLater waits up to ttd for a command and sends it, or a bare 2.04
// when none comes, as a separate response (RFC 7252 section 5.2.2): the
// handler returned without a response, so go-coap has acknowledged a
// confirmable request with an empty ACK and the client does not
// retransmit it while the device waits. The response is confirmable for
// a confirmable request, and the command counts as accepted once the
// device acknowledged it; for a non-confirmable request it is
// non-confirmable and accepted once sent.
func (a *Adapter) answerLater(wr waitRequest) {
	a.waiting.add(wr.cc, 1)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer a.waiting.add(wr.cc, -1)
		defer wr.cancel()
		t := time.NewTimer(wr.ttd)
		defer t.Stop()
		var p *command.Pending
		select {
		case c := <-wr.waiter.C():
			p = &c
		case <-t.C:
		case <-a.ctx.Done():
			return
		case <-wr.cc.Done():
			// A command that comes now is released.
			a.log.Warn("CoAP connection ended while the device waited for a command", "remote", wr.cc.RemoteAddr())
			return
		}
		ctx, cancel := context.WithCancel(a.ctx)
		defer cancel()
		stop := context.AfterFunc(wr.cc.Context(), cancel)
		defer stop()
		m := wr.cc.AcquireMessage(ctx)
		defer wr.cc.ReleaseMessage(m)
		m.SetToken(wr.token)
		if wr.confirmable {
			m.SetType(message.Confirmable)
		} else {
			m.SetType(message.NonConfirmable)
		}
		m.SetCode(codes.Changed)
		if p != nil && !setCommand(m, p.Cmd, wr.long, wr.loginDevice) {
			p.Done(command.Rejected)
			p = nil
		}
		err := wr.cc.WriteMessage(m)
		if err != nil {
			level := slog.LevelDebug
			if p != nil {
				level = slog.LevelWarn // a command is released for it
			}
			a.log.Log(ctx, level, "CoAP response to a waiting request not delivered", "remote", wr.cc.RemoteAddr(), "err", err)
		}
		if p == nil {
			return
		}
		if err != nil {
			p.Done(command.Released)
			return
		}
		p.Done(command.Accepted)
	}()
}

// mediaType is the CoAP content-format of a content type, if it has one.
func mediaType(ct string) (message.MediaType, bool) {
	if ct == "" {
		return 0, false
	}
	if mt, err := message.ToMediaType(ct); err == nil {
		return mt, true
	}
	// go-coap names format 0 "text/plain; charset=utf-8" (RFC 7252's
	// registry entry); applications mostly say text/plain.
	base, params, err := mime.ParseMediaType(ct)
	if err == nil && base == "text/plain" && (params["charset"] == "" || strings.EqualFold(params["charset"], "utf-8")) {
		return message.TextPlain, true
	}
	return 0, false
}
