package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/mqtt"
)

// Service is a gateway serving an MQTT listener, as `ferry gateway` runs
// it, with /metrics and /healthz on an optional HTTP listener.
type Service struct {
	gw     *Gateway
	srv    *mqtt.Server
	ln     net.Listener
	http   *http.Server
	httpLn net.Listener
	served chan error
}

// Start listens on cfg.MQTT.Addr and serves MQTT clients on
// cfg.Gateway.AMQPNetwork.
func Start(cfg config.Config, log *slog.Logger) (*Service, error) {
	gc := cfg.Gateway
	if gc.AMQPNetwork == "" {
		return nil, errors.New("--amqp-network is required: the AMQP 1.0 network to serve MQTT clients on, amqp://host:port")
	}
	opts := Options{Network: gc.AMQPNetwork, Addresses: Addresses(gc.Addresses), ForwardCredentials: gc.ForwardCredentials, Window: gc.Window, Logger: log}
	if gc.CAFile != "" {
		pem, err := os.ReadFile(gc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--amqp-network-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--amqp-network-ca: no PEM certificate in %s", gc.CAFile)
		}
		opts.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	gw, err := New(opts)
	if err != nil {
		return nil, fmt.Errorf("--amqp-network: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.MQTT.Addr)
	if err != nil {
		return nil, fmt.Errorf("--mqtt-addr: %w", err)
	}
	s := &Service{gw: gw, ln: ln, served: make(chan error, 1), srv: &mqtt.Server{
		Handler:          gw,
		Logger:           log,
		MaxPacketSize:    cfg.MQTT.MaxPacketSize,
		ReceiveMaximum:   cfg.MQTT.ReceiveMaximum,
		MaxInflight:      cfg.MQTT.MaxInflight,
		MaxQueued:        cfg.MQTT.MaxQueued,
		ConnectTimeout:   time.Duration(cfg.MQTT.ConnectTimeout),
		MaxKeepAlive:     cfg.MQTT.MaxKeepAlive,
		DisconnectLinger: -1,
	}}
	if gc.HTTPAddr != "" {
		hl, err := net.Listen("tcp", gc.HTTPAddr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("--http-addr: %w", err)
		}
		s.httpLn = hl
		s.http = &http.Server{Handler: s.mux(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = s.http.Serve(hl) }() // ends with Shutdown
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	log.Info("gateway serving MQTT on the AMQP network", "mqtt", ln.Addr().String(), "network", gw.netURL.Redacted(), "addresses", gw.opts.Addresses)
	return s, nil
}

// Addr is the MQTT listen address.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// HTTPAddr is the metrics listen address; nil when off.
func (s *Service) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Gateway is the service's gateway.
func (s *Service) Gateway() *Gateway { return s.gw }

// Shutdown stops accepting clients and closes every client's connections
// (their wills are published: the client did not leave cleanly).
func (s *Service) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if s.http != nil {
		_ = s.http.Shutdown(ctx)
	}
	if serr := <-s.served; serr != nil && !errors.Is(serr, mqtt.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Run serves until ctx ends.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	s, err := Start(cfg, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	return s.Shutdown(sctx)
}

// mux serves the gateway's counters to Prometheus.
func (s *Service) mux() *http.ServeMux {
	reg := prometheus.NewRegistry()
	stat := func(name, help string, f func(Stats) int64, gauge bool) {
		v := func() float64 { return float64(f(s.gw.Stats())) }
		if gauge {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v))
		} else {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, v))
		}
	}
	stat("ferry_gateway_connections", "MQTT clients connected through the gateway.", func(st Stats) int64 { return st.Connections }, true)
	stat("ferry_gateway_published_total", "Messages from MQTT clients the AMQP network took.", func(st Stats) int64 { return st.Published }, false)
	stat("ferry_gateway_delivered_total", "Messages from the AMQP network handed to MQTT clients.", func(st Stats) int64 { return st.Delivered }, false)
	stat("ferry_gateway_refused_total", "Messages from MQTT clients the AMQP network rejected or released.", func(st Stats) int64 { return st.Refused }, false)
	stat("ferry_gateway_dropped_total", "QoS 0 messages for MQTT clients dropped on a full queue.", func(st Stats) int64 { return st.Dropped }, false)
	stat("ferry_gateway_unroutable_total", "Messages from the AMQP network without a usable MQTT topic.", func(st Stats) int64 { return st.Unroutable }, false)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}
