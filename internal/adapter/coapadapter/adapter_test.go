package coapadapter

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
	"github.com/ferry-iot/ferry/internal/hub"
)

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		path   string
		want   route
		status int
	}{
		{"/t", route{ep: hono.Telemetry, bare: true}, 0},
		{"/telemetry", route{ep: hono.Telemetry, long: true, bare: true}, 0},
		{"/e/acme/d1", route{ep: hono.Event, tenant: "acme", device: "d1"}, 0},
		{"/event//d1", route{ep: hono.Event, long: true, device: "d1"}, 0},
		{"/cr/0x", route{response: true, bare: true, reqID: "0x"}, 0},
		{"/command_response/acme/d1/0x", route{response: true, long: true, tenant: "acme", device: "d1", reqID: "0x"}, 0},
		{"/cr//d1/0x", route{response: true, device: "d1", reqID: "0x"}, 0},
		{"/t/acme", route{}, 404},
		{"/t/acme/", route{}, 404},
		{"/t/acme/d1/x", route{}, 404},
		{"/cr", route{}, 404},
		{"/cr/acme/d1", route{}, 404},
		{"/cr/acme/d1/", route{}, 404},
		{"/command/res/acme/d1/0x", route{}, 404}, // the HTTP adapter's URI
		{"/x", route{}, 404},
	} {
		got, err := parseRoute(tc.path)
		switch {
		case tc.status != 0 && (err == nil || err.Status != tc.status):
			t.Errorf("%s: %+v %v, want status %d", tc.path, got, err, tc.status)
		case tc.status == 0 && err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case tc.status == 0 && got != tc.want:
			t.Errorf("%s: %+v, want %+v", tc.path, got, tc.want)
		}
	}
}

func TestCommandLocation(t *testing.T) {
	oneWay := &command.Command{Tenant: "acme", Device: "d1", Name: "on"}
	req := &command.Command{Tenant: "acme", Device: "d1", Name: "on", CorrelationID: "c", ReplyID: "r"}
	for _, tc := range []struct {
		name        string
		cmd         *command.Command
		long        bool
		loginDevice string
		want        []string
	}{
		{"own one-way", oneWay, false, "d1", []string{"c"}},
		{"own one-way, spelled out", oneWay, true, "d1", []string{"command"}},
		{"own request", req, false, "d1", []string{"cr", "ID"}},
		{"own request, spelled out", req, true, "d1", []string{"command_response", "ID"}},
		{"unauthenticated one-way", oneWay, false, "", []string{"c"}},
		{"unauthenticated request", req, false, "", []string{"cr", "acme", "d1", "ID"}},
		{"unauthenticated request, spelled out", req, true, "", []string{"command_response", "acme", "d1", "ID"}},
		{"gateway one-way", oneWay, false, "gw", []string{"c", "", "d1"}},
		{"gateway one-way, spelled out", oneWay, true, "gw", []string{"command", "", "d1"}},
		{"gateway request", req, false, "gw", []string{"cr", "", "d1", "ID"}},
		{"gateway request, spelled out", req, true, "gw", []string{"command_response", "", "d1", "ID"}},
	} {
		if got := commandLocation(tc.cmd, "ID", tc.long, tc.loginDevice); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// sink is a hub connection that hands its deliveries to a channel.
type sink chan hub.Delivery

func (s sink) Deliver(d hub.Delivery) bool {
	select {
	case s <- d:
		return true
	default:
		return false
	}
}

// responses is an application's reply address.
type responses chan *command.Response

func (r responses) Respond(resp *command.Response) bool { r <- resp; return true }

type fixture struct {
	router *command.Router
	tele   sink
	cc     *udpclient.Conn
}

func start(t *testing.T) fixture {
	t.Helper()
	h := hub.New(hub.Options{})
	router := command.NewRouter(command.Options{})
	t.Cleanup(router.Close)
	a := New(Options{Downstream: downstream.New(downstream.Options{Hub: h}), Commands: router})
	if err := a.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	s, _ := h.Open("acme", hono.HubPrefix+"test", true)
	tele := make(sink, 10)
	s.Attach(tele)
	if _, err := s.Subscribe(hub.Subscription{Filter: hono.HubFilter(hono.Telemetry)}); err != nil {
		t.Fatal(err)
	}
	cc, err := udp.Dial(a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return fixture{router: router, tele: tele, cc: cc}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// request sends a request and returns its response.
func (f fixture) request(t *testing.T, code codes.Code, typ message.Type, path, query string, body []byte) *pool.Message {
	t.Helper()
	resp, err := f.do(ctxFor(t, 10*time.Second), code, typ, path, query, body)
	if err != nil {
		t.Fatalf("%s %s?%s: %v", code, path, query, err)
	}
	return resp
}

func (f fixture) do(ctx context.Context, code codes.Code, typ message.Type, path, query string, body []byte) (*pool.Message, error) {
	req := f.cc.AcquireMessage(ctx)
	req.SetCode(code)
	req.SetType(typ)
	req.SetToken(message.Token{1, 2, byte(time.Now().UnixNano())})
	req.SetMessageID(f.cc.GetMessageID())
	if err := req.SetPath(path); err != nil {
		return nil, err
	}
	if query != "" {
		req.AddOptionString(message.URIQuery, query)
	}
	if body != nil {
		req.SetContentFormat(message.TextPlain)
		req.SetBody(bytes.NewReader(body))
	}
	return f.cc.Do(req)
}

func (f fixture) expectTelemetry(t *testing.T) hub.Delivery {
	t.Helper()
	select {
	case d := <-f.tele:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no telemetry downstream")
		return hub.Delivery{}
	}
}

func stringOptions(m *pool.Message, id message.OptionID) []string {
	var out []string
	for _, o := range m.Options() {
		if o.ID == id {
			out = append(out, string(o.Value))
		}
	}
	return out
}

// TestCommandInResponse: a device that waits with hono-ttd gets a command
// in the response to its confirmable or non-confirmable request, with the
// location to answer on, and its answer reaches the application; without
// a command the response is a bare 2.04 after the ttd.
func TestCommandInResponse(t *testing.T) {
	for _, typ := range []message.Type{message.Confirmable, message.NonConfirmable} {
		t.Run(typ.String(), func(t *testing.T) {
			f := start(t)
			replies := make(responses, 1)
			f.router.Receive("acme", "app-1", replies)
			got := make(chan *pool.Message, 1)
			errs := make(chan error, 1)
			ctx := ctxFor(t, 10*time.Second)
			go func() {
				resp, err := f.do(ctx, codes.PUT, typ, "/t/acme/d1", "hono-ttd=5", []byte("waiting"))
				if err != nil {
					errs <- err
					return
				}
				got <- resp
			}()
			d := f.expectTelemetry(t) // the device waits now
			var ttd any
			for _, p := range d.Message.Properties {
				if p.Key == hono.PropTTD {
					ttd = p.Value
				}
			}
			if ttd != int64(5) {
				t.Errorf("ttd downstream %v, want 5", ttd)
			}
			outcome := make(chan command.Outcome, 1)
			f.router.Send(context.Background(), &command.Command{Tenant: "acme", Device: "d1", Name: "switch",
				CorrelationID: "corr-1", ReplyID: "app-1", ContentType: "application/json", Payload: []byte(`{"on":true}`)},
				func(o command.Outcome) { outcome <- o })
			var resp *pool.Message
			select {
			case resp = <-got:
			case err := <-errs:
				t.Fatal(err)
			}
			body, _ := resp.ReadBody()
			ct, _ := resp.ContentFormat()
			if resp.Code() != codes.Changed || string(body) != `{"on":true}` || ct != message.AppJSON {
				t.Fatalf("response %s %q %s", resp.Code(), body, ct)
			}
			if q := stringOptions(resp, message.LocationQuery); !reflect.DeepEqual(q, []string{"hono-command=switch"}) {
				t.Errorf("location-query %q", q)
			}
			if typ == message.NonConfirmable && resp.Type() != message.NonConfirmable {
				t.Errorf("a NON request got a %s response", resp.Type())
			}
			loc := stringOptions(resp, message.LocationPath)
			reqID, _ := hono.EncodeReqID("corr-1", "app-1", "d1", hono.MessagingAMQP)
			if !reflect.DeepEqual(loc, []string{"cr", "acme", "d1", reqID}) {
				t.Fatalf("location-path %q", loc)
			}
			if o := <-outcome; o != command.Accepted {
				t.Errorf("outcome %v", o)
			}
			r := f.request(t, codes.PUT, message.Confirmable, "/"+loc[0]+"/"+loc[1]+"/"+loc[2]+"/"+loc[3], "hono-cmd-status=200", []byte("done"))
			if r.Code() != codes.Changed {
				t.Fatalf("command response: %s", r.Code())
			}
			if a := <-replies; a.CorrelationID != "corr-1" || a.Status != 200 || string(a.Payload) != "done" || a.Device != "d1" {
				t.Fatalf("application got %+v", a)
			}

			// No command within the ttd.
			start := time.Now()
			r = f.request(t, codes.PUT, typ, "/t/acme/d1", "hono-ttd=1", []byte("again"))
			f.expectTelemetry(t)
			if r.Code() != codes.Changed || r.HasOption(message.LocationPath) || time.Since(start) < time.Second {
				t.Fatalf("without a command: %s %v after %v", r.Code(), r.Options(), time.Since(start))
			}
		})
	}
}

// TestBadRequests: the refusals of the request checks.
func TestBadRequests(t *testing.T) {
	f := start(t)
	for _, tc := range []struct {
		name        string
		code        codes.Code
		path, query string
		body        []byte
		want        codes.Code
	}{
		{"empty without content-format", codes.PUT, "/t/acme/d1", "", nil, codes.BadRequest},
		{"empty with a payload", codes.PUT, "/t/acme/d1", "empty", []byte("x"), codes.BadRequest},
		{"bad ttd", codes.PUT, "/t/acme/d1", "hono-ttd=soon", []byte("x"), codes.BadRequest},
		{"authenticated form without DTLS", codes.POST, "/t", "", []byte("x"), codes.Unauthorized},
		{"wrong method", codes.POST, "/t/acme/d1", "", []byte("x"), codes.MethodNotAllowed},
		{"response without status", codes.PUT, "/cr/acme/d1/00ac", "", nil, codes.BadRequest},
		{"response with a bad status", codes.PUT, "/cr/acme/d1/00ac", "hono-cmd-status=ok", nil, codes.BadRequest},
		{"malformed request id", codes.PUT, "/cr/acme/d1/zz", "hono-cmd-status=200", nil, codes.BadRequest},
		{"nobody waits for the response", codes.PUT, "/cr/acme/d1/" + mustReqID(t), "hono-cmd-status=200", nil, codes.ServiceUnavailable},
		{"the HTTP adapter's URI", codes.PUT, "/command/res/acme/d1/00ac", "hono-cmd-status=200", nil, codes.NotFound},
	} {
		if r := f.request(t, tc.code, message.Confirmable, tc.path, tc.query, tc.body); r.Code() != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, r.Code(), tc.want)
		}
	}
	r := f.request(t, codes.PUT, message.Confirmable, "/t/acme/d1", "empty", nil)
	d := f.expectTelemetry(t)
	if r.Code() != codes.Changed || d.Message.ContentType != hono.ContentTypeEmptyNotification {
		t.Errorf("empty notification: %s, downstream %q", r.Code(), d.Message.ContentType)
	}
}

func mustReqID(t *testing.T) string {
	id, err := hono.EncodeReqID("c", "nobody", "d1", hono.MessagingAMQP)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestMediaType(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		want message.MediaType
		ok   bool
	}{
		{"application/json", message.AppJSON, true},
		{"text/plain", message.TextPlain, true},
		{"text/plain; charset=UTF-8", message.TextPlain, true},
		{"text/plain; charset=iso-8859-1", 0, false},
		{"application/vnd.acme+json", 0, false},
		{"", 0, false},
	} {
		if got, ok := mediaType(tc.ct); got != tc.want || ok != tc.ok {
			t.Errorf("%q: %v %v, want %v %v", tc.ct, got, ok, tc.want, tc.ok)
		}
	}
}
