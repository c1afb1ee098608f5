package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/amqp/frame"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// Hono describes the Hono scenarios: MQTT devices publish telemetry
// (QoS 0) or events (QoS 1) on Hono's topics and one northbound AMQP
// application receives them (settling events one by one), or the
// application sends commands that MQTT devices answer.
type Hono struct {
	Addr     string // MQTT
	AMQPAddr string // northbound AMQP
	Tenant   string
	// Mode is telemetry, event, http (telemetry over Hono's HTTP adapter,
	// at HTTPAddr, each device a keep-alive client) or command.
	Mode     string
	HTTPAddr string
	// DeviceAMQPAddr is Ferry's AMQP device adapter (mode amqp: devices
	// send unsettled telemetry on the anonymous relay, Window at once).
	DeviceAMQPAddr string
	// CoAPAddr is Ferry's CoAP adapter (modes coap: confirmable PUTs,
	// each device Window at once; coap-non: non-confirmable).
	CoAPAddr string
	Devices  int
	Messages int // per device (commands: in all)
	Payload  int
	// Credit of the application's receiver.
	Credit uint32
	// Window bounds unacknowledged QoS 1 publishes per device, and
	// commands outstanding at once.
	Window int
	// NoConsumer publishes without an application attached: the rate the
	// devices (the generator) and Ferry's ingest reach alone. Telemetry
	// only; Ferry drops it.
	NoConsumer bool
	// Rate, if set, paces the devices to this many messages per second
	// in all (flushed every millisecond), for latency below saturation.
	Rate int
	Idle time.Duration
	// QoS of the devices' telemetry (0 or 1); events are always 1.
	QoS byte
	// KafkaBrokers, if set, make the consumer a Kafka client of Hono's
	// topics (hono.telemetry.<tenant>, hono.event.<tenant>) instead of a
	// northbound AMQP application: for Ferry with --kafka-brokers.
	KafkaBrokers []string
}

// HonoResult is the outcome of one Hono run.
type HonoResult struct {
	Result
	Samples  int
	P50, P99 time.Duration
}

func (r HonoResult) String() string {
	if r.Samples == 0 {
		return r.Result.String()
	}
	return fmt.Sprintf("%s; latency p50 %s p99 %s over %d samples", r.Result, fmtMillis(r.P50), fmtMillis(r.P99), r.Samples)
}

// Metrics returns the rate and, with samples, the latency percentiles.
func (r HonoResult) Metrics(scenario, unit string) []Metric {
	ms := r.Result.Metrics(scenario, unit)
	if r.Samples > 0 {
		ms = append(ms,
			Metric{Scenario: scenario, Name: "p50", Unit: "ms", Value: float64(r.P50) / 1e6, Loss: r.Loss(), LowerIsBetter: true},
			Metric{Scenario: scenario, Name: "p99", Unit: "ms", Value: float64(r.P99) / 1e6, Loss: r.Loss(), LowerIsBetter: true})
	}
	return ms
}

func (h *Hono) defaults() {
	if h.Tenant == "" {
		h.Tenant = "DEFAULT_TENANT"
	}
	if h.Credit == 0 {
		h.Credit = 1000
	}
	if h.Window <= 0 {
		h.Window = 64
	}
	if h.Idle <= 0 {
		h.Idle = 3 * time.Second
	}
	if h.Payload < 8 {
		h.Payload = 8 // the send time
	}
}

// Run runs the scenario once.
func (h Hono) Run(ctx context.Context) (HonoResult, error) {
	h.defaults()
	switch h.Mode {
	case "telemetry", "event", "http", "amqp", "coap", "coap-non":
		return h.runUpstream(ctx)
	case "command":
		return h.runCommands(ctx)
	}
	return HonoResult{}, fmt.Errorf("mode %q: telemetry, event, http, amqp, coap, coap-non or command", h.Mode)
}

func (h Hono) dialApp(ctx context.Context) (*amqp.Conn, *amqp.Session, error) {
	c, err := amqp.Dial(ctx, h.AMQPAddr, &amqp.ConnOptions{SASL: amqp.SASLAnonymous})
	if err != nil {
		return nil, nil, fmt.Errorf("application: %w", err)
	}
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, s, nil
}

func (h Hono) runUpstream(ctx context.Context) (HonoResult, error) {
	qos := h.QoS
	ep := "telemetry"
	if h.Mode == "event" {
		qos, ep = 1, "event"
	}
	total := h.Devices * h.Messages
	var (
		received  atomic.Int64
		last      atomic.Int64
		latencies = make([]time.Duration, 0, min(total, 1<<20))
		latMu     sync.Mutex
	)
	recvDone := make(chan error, 1)
	if !h.NoConsumer && len(h.KafkaBrokers) > 0 {
		stop, err := h.consumeKafka(ctx, ep, total, &received, &last, func(sent int64, now time.Time) {
			latMu.Lock()
			if len(latencies) < cap(latencies) {
				latencies = append(latencies, now.Sub(time.Unix(0, sent)))
			}
			latMu.Unlock()
		}, recvDone)
		if err != nil {
			return HonoResult{}, err
		}
		defer stop()
	} else if !h.NoConsumer {
		c, s, err := h.dialApp(ctx)
		if err != nil {
			return HonoResult{}, err
		}
		defer c.Close()
		opts := &amqp.ReceiverOptions{Credit: h.Credit}
		if qos == 0 {
			settled := frame.SenderSettleSettled
			opts.SettleMode = &settled // at most once, as the telemetry
		}
		rcv, err := s.NewReceiver(ctx, ep+"/"+h.Tenant, opts)
		if err != nil {
			return HonoResult{}, fmt.Errorf("receiver: %w", err)
		}
		go func() {
			for int(received.Load()) < total {
				rctx, cancel := context.WithTimeout(ctx, h.Idle)
				d, err := rcv.Receive(rctx)
				cancel()
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
						err = nil // idle: the rest counts as lost
					}
					recvDone <- err
					return
				}
				now := time.Now()
				if len(d.Message.Data) > 0 && len(d.Message.Data[0]) >= 8 {
					sent := int64(binary.BigEndian.Uint64(d.Message.Data[0]))
					latMu.Lock()
					if len(latencies) < cap(latencies) {
						latencies = append(latencies, now.Sub(time.Unix(0, sent)))
					}
					latMu.Unlock()
				}
				if qos == 1 {
					if err := d.Accept(ctx); err != nil {
						recvDone <- err
						return
					}
				}
				received.Add(1)
				last.Store(now.UnixNano())
			}
			recvDone <- nil
		}()
	}
	run := runID()
	switch h.Mode {
	case "http":
		return h.finishUpstream(total, h.postHTTP(ctx, run), recvDone, &received, &last, &latencies, &latMu)
	case "amqp":
		return h.finishUpstream(total, h.sendAMQP(ctx, run), recvDone, &received, &last, &latencies, &latMu)
	case "coap", "coap-non":
		return h.finishUpstream(total, h.putCoAP(ctx, run, h.Mode == "coap"), recvDone, &received, &last, &latencies, &latMu)
	}
	devs := make([]*client, h.Devices)
	for i := range devs {
		var err error
		if devs[i], err = dial(h.Addr, fmt.Sprintf("hono-dev-%s-%d", run, i), true); err != nil {
			return HonoResult{}, fmt.Errorf("device %d: %w", i, err)
		}
		defer devs[i].conn.Close()
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, h.Devices)
	for i, c := range devs {
		wg.Go(func() {
			p := newPublisher(c, qos, h.Window, h.Messages)
			pub := &packet.Publish{Topic: fmt.Sprintf("%s/%s/dev-%s-%d", ep, h.Tenant, run, i), Payload: make([]byte, h.Payload)}
			perDevice := float64(h.Rate) / float64(h.Devices)
			for j := range h.Messages {
				if j%1024 == 0 && ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				if h.Rate > 0 {
					// Behind schedule: go on; ahead: flush and wait.
					for due := int(time.Since(start).Seconds() * perDevice); j >= due; due = int(time.Since(start).Seconds() * perDevice) {
						if err := c.flush(); err != nil {
							errs <- err
							return
						}
						time.Sleep(time.Millisecond) // pacing, not readiness
					}
				}
				pub.Payload = stamped(h.Payload) // the hub keeps a reference
				if err := p.publish(ctx, pub); err != nil {
					errs <- fmt.Errorf("device %d: %w", i, err)
					return
				}
			}
			if err := p.finish(); err != nil {
				errs <- fmt.Errorf("device %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	published := time.Since(start)
	close(errs)
	for err := range errs {
		return HonoResult{}, err
	}
	return h.finishUpstream(total, upstreamRun{start: start, published: published}, recvDone, &received, &last, &latencies, &latMu)
}

// upstreamRun is how the devices' part of a run went.
type upstreamRun struct {
	start     time.Time
	published time.Duration
	err       error
}

func (h Hono) finishUpstream(total int, u upstreamRun, recvDone chan error, received, last *atomic.Int64, latencies *[]time.Duration, latMu *sync.Mutex) (HonoResult, error) {
	if u.err != nil {
		return HonoResult{}, u.err
	}
	start, published := u.start, u.published
	if h.NoConsumer {
		return HonoResult{Result: Result{Sent: total, Received: total, Elapsed: published}}, nil
	}
	if err := <-recvDone; err != nil {
		return HonoResult{}, err
	}
	res := HonoResult{Result: Result{Sent: total, Received: int(received.Load())}}
	if l := last.Load(); l != 0 {
		res.Elapsed = time.Unix(0, l).Sub(start)
	}
	latMu.Lock()
	res.Samples = len(*latencies)
	res.P50, res.P99 = percentile(*latencies, 0.5), percentile(*latencies, 0.99)
	latMu.Unlock()
	return res, nil
}

// runCommands sends Messages request/response commands round robin to
// Devices devices, at most Window outstanding, and counts the responses.
func (h Hono) runCommands(ctx context.Context) (HonoResult, error) {
	run := runID()
	// Devices answer every command on its response topic.
	devErr := make(chan error, h.Devices)
	for i := range h.Devices {
		dev := fmt.Sprintf("cmd-dev-%s-%d", run, i)
		c, err := dial(h.Addr, dev, true)
		if err != nil {
			return HonoResult{}, fmt.Errorf("device %d: %w", i, err)
		}
		defer c.conn.Close()
		if err := c.subscribe("command/"+h.Tenant+"/"+dev+"/req/#", 1); err != nil {
			return HonoResult{}, err
		}
		go func() { devErr <- answer(c, h.Tenant, dev) }()
	}
	conn, s, err := h.dialApp(ctx)
	if err != nil {
		return HonoResult{}, err
	}
	defer conn.Close()
	reply := "command_response/" + h.Tenant + "/bench-" + run
	rcv, err := s.NewReceiver(ctx, reply, &amqp.ReceiverOptions{Credit: h.Credit})
	if err != nil {
		return HonoResult{}, err
	}
	snd, err := s.NewSender(ctx, "command/"+h.Tenant, nil)
	if err != nil {
		return HonoResult{}, err
	}
	ready := make(chan struct{}, 1)
	snd.OnReady(func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	})
	sent := make([]int64, h.Messages)
	slots := make(chan struct{}, h.Window)
	var latencies []time.Duration
	var received int
	var lastAt time.Time
	done := make(chan error, 1)
	go func() {
		for received < h.Messages {
			rctx, cancel := context.WithTimeout(ctx, h.Idle)
			d, err := rcv.Receive(rctx)
			cancel()
			if err != nil {
				done <- nil // the rest counts as lost
				return
			}
			lastAt = time.Now()
			var n int
			if id, ok := d.Message.Properties.CorrelationID.(string); ok {
				fmt.Sscan(id, &n)
			}
			if n >= 0 && n < len(sent) && sent[n] != 0 {
				latencies = append(latencies, lastAt.Sub(time.Unix(0, sent[n])))
			}
			_ = d.Accept(ctx)
			received++
			<-slots
		}
		done <- nil
	}()
	start := time.Now()
	for i := range h.Messages {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return HonoResult{}, ctx.Err()
		}
		dev := fmt.Sprintf("cmd-dev-%s-%d", run, i%h.Devices)
		m := &amqp.Message{Properties: &amqp.Properties{To: "command/" + h.Tenant + "/" + dev, Subject: "bench",
			ReplyTo: reply, CorrelationID: fmt.Sprint(i)}, Data: [][]byte{make([]byte, h.Payload)}}
		sent[i] = time.Now().UnixNano()
		for {
			ok, err := snd.TrySend(m, nil, nil)
			if err != nil {
				return HonoResult{}, err
			}
			if ok {
				break
			}
			select {
			case <-ready:
			case <-ctx.Done():
				return HonoResult{}, ctx.Err()
			}
		}
	}
	<-done
	res := HonoResult{Result: Result{Sent: h.Messages, Received: received}}
	if !lastAt.IsZero() {
		res.Elapsed = lastAt.Sub(start)
	}
	res.Samples = len(latencies)
	res.P50, res.P99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
	return res, nil
}

// answer acknowledges each command and publishes its response.
func answer(c *client, tenant, dev string) error {
	for {
		p, err := c.read()
		if err != nil {
			return err
		}
		pub, ok := p.(*packet.Publish)
		if !ok {
			continue
		}
		if pub.QoS == 1 {
			if err := c.write(&packet.Puback{PacketID: pub.PacketID}); err != nil {
				return err
			}
		}
		// command/<tenant>/<device>/req/<req-id>/<name>
		var reqID string
		segs := 0
		for i, start := 0, 0; i <= len(pub.Topic); i++ {
			if i == len(pub.Topic) || pub.Topic[i] == '/' {
				if segs == 4 {
					reqID = pub.Topic[start:i]
				}
				segs++
				start = i + 1
			}
		}
		if err := c.write(&packet.Publish{Topic: "command/" + tenant + "/" + dev + "/res/" + reqID + "/200", Payload: pub.Payload}); err != nil {
			return err
		}
		if c.r.Buffered() == 0 {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
}

// postHTTP sends the devices' telemetry to Hono's HTTP adapter: each
// device a client with one keep-alive connection, PUT
// /telemetry/<tenant>/<device> (unauthenticated) at QoS, 1 with Hono's
// QoS-Level header; every answer must be 202.
func (h Hono) postHTTP(ctx context.Context, run string) upstreamRun {
	tr := &http.Transport{MaxIdleConnsPerHost: h.Devices, MaxConnsPerHost: h.Devices}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return h.devices(func(i int) error {
		url := fmt.Sprintf("http://%s/telemetry/%s/dev-%s-%d", h.HTTPAddr, h.Tenant, run, i)
		for range h.Messages {
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(stamped(h.Payload)))
			if err != nil {
				return err
			}
			if h.QoS == 1 {
				req.Header.Set("QoS-Level", "1")
			}
			resp, err := cl.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
		}
		return nil
	})
}

// devices runs each for every device at once and returns how the run went:
// its start, the time until every device finished, the first error.
func (h Hono) devices(each func(i int) error) upstreamRun {
	start := time.Now()
	var g errgroup.Group
	for i := range h.Devices {
		g.Go(func() error {
			if err := each(i); err != nil {
				return fmt.Errorf("device %d: %w", i, err)
			}
			return nil
		})
	}
	err := g.Wait()
	return upstreamRun{start: start, published: time.Since(start), err: err}
}

// stamped is a payload of size bytes starting with the send time, for the
// receiver's latency.
func stamped(size int) []byte {
	pl := make([]byte, size)
	binary.BigEndian.PutUint64(pl, uint64(time.Now().UnixNano()))
	return pl
}

// sendAMQP sends the devices' telemetry unsettled to Hono's AMQP device
// adapter, each device its own connection and at most Window messages
// awaiting their outcome; every outcome must be accepted.
func (h Hono) sendAMQP(ctx context.Context, run string) upstreamRun {
	return h.devices(func(i int) error {
		return h.amqpDevice(ctx, fmt.Sprintf("telemetry/%s/dev-%s-%d", h.Tenant, run, i))
	})
}

func (h Hono) amqpDevice(ctx context.Context, to string) error {
	c, err := amqp.Dial(ctx, h.DeviceAMQPAddr, &amqp.ConnOptions{SASL: amqp.SASLAnonymous})
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		return err
	}
	snd, err := s.NewSender(ctx, "", nil)
	if err != nil {
		return err
	}
	slots := make(chan struct{}, h.Window)
	ready := make(chan struct{}, 1)
	snd.OnReady(func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	})
	failed := make(chan error, 1)
	for range h.Messages {
		select {
		case slots <- struct{}{}:
		case err := <-failed:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
		m := &amqp.Message{Properties: &amqp.Properties{To: to}, Data: [][]byte{stamped(h.Payload)}}
		for {
			ok, err := snd.TrySend(m, nil, func(err error) {
				if err != nil {
					select {
					case failed <- err:
					default:
					}
				}
				<-slots
			})
			if err != nil {
				return err
			}
			if ok {
				break
			}
			select {
			case <-ready:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	for range h.Window { // the last outcomes
		select {
		case slots <- struct{}{}:
		case err := <-failed:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case err := <-failed:
		return err
	default:
		return nil
	}
}

// putCoAP sends the devices' telemetry to Hono's CoAP adapter: PUT
// /t/<tenant>/<device>, confirmable (each device Window requests at
// once, every answer must be 2.04) or non-confirmable.
func (h Hono) putCoAP(ctx context.Context, run string, confirmable bool) upstreamRun {
	return h.devices(func(i int) error {
		conn, err := udp.Dial(h.CoAPAddr)
		if err != nil {
			return err
		}
		defer conn.Close()
		path := fmt.Sprintf("/t/%s/dev-%s-%d", h.Tenant, run, i)
		if !confirmable {
			for range h.Messages {
				if err := coapNON(ctx, conn, path, h.Payload); err != nil {
					return err
				}
			}
			return nil
		}
		// Window workers share the device's messages.
		var g errgroup.Group
		workers := min(h.Window, h.Messages)
		for w := range workers {
			n := h.Messages / workers
			if w < h.Messages%workers {
				n++
			}
			g.Go(func() error {
				for range n {
					resp, err := conn.Put(ctx, path, message.AppOctets, bytes.NewReader(stamped(h.Payload)))
					if err != nil {
						return err
					}
					if resp.Code() != codes.Changed {
						return fmt.Errorf("CoAP %v", resp.Code())
					}
				}
				return nil
			})
		}
		return g.Wait()
	})
}

func coapNON(ctx context.Context, conn *udpclient.Conn, path string, size int) error {
	req := conn.AcquireMessage(ctx)
	defer conn.ReleaseMessage(req)
	pl := stamped(size)
	req.SetCode(codes.PUT)
	req.SetType(message.NonConfirmable)
	req.SetMessageID(int32(conn.GetMessageID()))
	req.SetToken(token())
	if err := req.SetPath(path); err != nil {
		return err
	}
	req.SetContentFormat(message.AppOctets)
	req.SetBody(bytes.NewReader(pl))
	return conn.WriteMessage(req)
}

var tokens atomic.Uint64

func token() message.Token {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], tokens.Add(1))
	return b[:]
}
