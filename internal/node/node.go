// Package node assembles one Ferry process from its configuration and
// starts and stops its components in order.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/adapter/mqttadapter"
	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/metrics"
	"github.com/ferry-iot/ferry/mqtt"
)

// Node is one running Ferry process.
type Node struct {
	cfg     config.Config
	log     *slog.Logger
	hub     *hub.Hub
	metrics *metrics.Metrics
	mqtt    *mqtt.Server
	http    *http.Server // nil when the HTTP endpoint is off

	mqttLn net.Listener
	httpLn net.Listener
	ready  atomic.Bool
	// served receives the end of each serving goroutine (MQTT, HTTP).
	served  chan error
	serving int
}

// Start validates cfg, prepares the data directory and opens the listeners.
// Serving begins at once; stop with Shutdown.
func Start(cfg config.Config, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory (--data-dir): %w", err)
	}
	n := &Node{cfg: cfg, log: log, served: make(chan error, 2), metrics: metrics.New()}
	n.hub = hub.New(hub.Options{
		MaxQueuedMessages: cfg.MQTT.MaxQueuedOffline,
		MaxQueuedBytes:    cfg.MQTT.MaxQueuedOfflineBytes,
		QueueQoS0:         cfg.MQTT.QueueQoS0Offline,
		Logger:            log,
	})
	n.mqtt = &mqtt.Server{
		Handler: mqttadapter.New(n.hub, mqttadapter.Options{
			Tenant: config.DefaultTenant, Logger: log, Metrics: n.metrics,
		}),
		Logger:            log,
		MaxPacketSize:     cfg.MQTT.MaxPacketSize,
		ReceiveMaximum:    cfg.MQTT.ReceiveMaximum,
		MaxInflight:       cfg.MQTT.MaxInflight,
		MaxQueued:         cfg.MQTT.MaxQueued,
		ConnectTimeout:    time.Duration(cfg.MQTT.ConnectTimeout),
		MaxKeepAlive:      cfg.MQTT.MaxKeepAlive,
		TopicAliasMaximum: cfg.MQTT.TopicAliasMaximum,
	}
	n.metrics.WatchHub(n.hub)

	ln, err := net.Listen("tcp", cfg.MQTT.Addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt listener (--mqtt-addr): %w", err)
	}
	n.mqttLn = ln
	if cfg.HTTP.Addr != "" {
		hl, err := net.Listen("tcp", cfg.HTTP.Addr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("http listener (--http-addr): %w", err)
		}
		n.httpLn = hl
		n.http = newHTTPServer(n.opsMux(&n.ready))
	}

	n.serving++
	go func() { n.served <- n.mqtt.Serve(ln) }()
	attrs := []any{slog.String("mqtt", ln.Addr().String())}
	if n.http != nil {
		n.serving++
		go func() { n.served <- n.http.Serve(n.httpLn) }()
		attrs = append(attrs, slog.String("http", n.httpLn.Addr().String()))
	}
	n.ready.Store(true)
	log.Info("ferry started", append(attrs, slog.String("data_dir", cfg.DataDir),
		slog.String("tenant", config.DefaultTenant))...)
	return n, nil
}

// HTTPAddr is the address of the HTTP endpoint, nil when it is off.
func (n *Node) HTTPAddr() net.Addr {
	if n.httpLn == nil {
		return nil
	}
	return n.httpLn.Addr()
}

// MQTTAddr is the address the MQTT listener is bound to.
func (n *Node) MQTTAddr() net.Addr { return n.mqttLn.Addr() }

// Hub is the node's router.
func (n *Node) Hub() *hub.Hub { return n.hub }

// Shutdown stops accepting, disconnects clients and waits for the
// components to finish, bounded by ctx.
func (n *Node) Shutdown(ctx context.Context) error {
	n.ready.Store(false)
	err := n.mqtt.Shutdown(ctx)
	if n.http != nil {
		err = errors.Join(err, n.http.Shutdown(ctx))
	}
	for ; n.serving > 0; n.serving-- {
		select {
		case serr := <-n.served:
			if serr != nil && !errors.Is(serr, mqtt.ErrServerClosed) && !errors.Is(serr, http.ErrServerClosed) {
				err = errors.Join(err, serr)
			}
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
	}
	return err
}

// Run starts a node and serves until ctx is cancelled, then shuts down
// within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	n, err := Start(cfg, log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-n.served:
		n.serving--
		sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
		defer cancel()
		return errors.Join(fmt.Errorf("listener failed: %w", err), n.Shutdown(sctx))
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
