// Package node assembles one Ferry process from its configuration and
// starts and stops its components in order.
package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-iot/ferry/internal/adapter/amqpadapter"
	"github.com/ferry-iot/ferry/internal/adapter/coapadapter"
	"github.com/ferry-iot/ferry/internal/adapter/downstream"
	"github.com/ferry-iot/ferry/internal/adapter/httpadapter"
	"github.com/ferry-iot/ferry/internal/adapter/mqttadapter"
	"github.com/ferry-iot/ferry/internal/analytics"
	"github.com/ferry-iot/ferry/internal/auth"
	"github.com/ferry-iot/ferry/internal/bridge"
	"github.com/ferry-iot/ferry/internal/cluster"
	"github.com/ferry-iot/ferry/internal/cmdroute"
	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/metrics"
	"github.com/ferry-iot/ferry/internal/northbound/amqpapi"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/registryapi"
	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/memstore"
	"github.com/ferry-iot/ferry/internal/store/pebblestore"
	"github.com/ferry-iot/ferry/internal/store/pgstore"
	"github.com/ferry-iot/ferry/internal/systopics"
	"github.com/ferry-iot/ferry/internal/transport"
	"github.com/ferry-iot/ferry/mqtt"
)

// Version is the version the binary reports ($SYS/broker/version); cmd/ferry
// sets it.
var Version = "devel"

// Node is one running Ferry process.
type Node struct {
	cfg      config.Config
	log      *slog.Logger
	hub      *hub.Hub
	store    store.Store // nil in memory mode
	registry *registry.Registry
	cluster  *cluster.Cluster // nil in the embedded mode
	// closers release the store, the registry's database, the hub, the
	// registry watch and the cluster connection, in reverse order.
	closers []func(context.Context) error
	metrics *metrics.Metrics
	mqtt    *mqtt.Server
	http    *http.Server // nil when the HTTP endpoint is off

	mqttLn net.Listener
	appLn  net.Listener // northbound AMQP; nil when off
	// appTLSLn is the northbound AMQP listener over TLS (appTLS its
	// configuration); nil when off.
	appTLSLn net.Listener
	appTLS   *tls.Config
	devLn    net.Listener // AMQP device adapter; nil when off
	// devTLSLn is the AMQP device adapter over TLS (devTLS its
	// configuration); nil when off.
	devTLSLn net.Listener
	devTLS   *tls.Config
	// devAMQP serves devLn.
	devAMQP *amqpadapter.Adapter
	coap    *coapadapter.Adapter // nil when CoAP is off
	apps    *amqpapi.Server
	cmds    *command.Router
	// authn checks every front end's password logins: one cache, which
	// the registry watch invalidates when credentials change.
	authn mqttadapter.Authenticator
	// downstream publishes devices' Hono messages for every front end;
	// nil with hono.disabled.
	downstream *downstream.Downstream
	tlsLn      net.Listener // nil when MQTT over TLS is off
	wsLn       *transport.WSListener
	wsHTTP     *http.Server // serves wsLn over wsNetLn; nil when WebSocket is off
	wsNetLn    net.Listener
	httpLn     net.Listener // nil when http.addr is off
	httpsLn    net.Listener // nil when http.tls_addr is off; n.http serves both
	bridges    []*bridge.Bridge
	analytics  *analytics.Service // analytics.go
	ready      atomic.Bool
	// stopBackground ends the background tasks ($SYS); background waits
	// for them.
	stopBackground context.CancelFunc
	background     sync.WaitGroup
	// served receives the end of each serving goroutine (MQTT, HTTP).
	served  chan error
	serving int
}

// Start validates cfg, prepares the data directory and opens the listeners.
// Serving begins at once; stop with Shutdown.
func Start(cfg config.Config, log *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory (--data-dir): %w", err)
	}
	// One slot per serving goroutine: MQTT, MQTT/TLS, WebSocket (two), HTTP.
	n := &Node{cfg: cfg, log: log, served: make(chan error, 5), metrics: metrics.New()}
	// One cleanup path: whatever was opened before a failure is closed,
	// in reverse order, as Shutdown closes it.
	defer func() {
		if err != nil {
			n.closeListeners()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
			defer cancel()
			n.closeAll(ctx)
		}
	}()
	if cfg.Store.Engine == "pebble" {
		durability, err := pebblestore.ParseDurability(cfg.Store.Durability)
		if err != nil {
			return nil, fmt.Errorf("store.durability: %w", err)
		}
		ps, err := pebblestore.Open(filepath.Join(cfg.DataDir, "store"), &pebblestore.Options{
			Durability: durability, SyncInterval: time.Duration(cfg.Store.SyncInterval), Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("opening the store in %s (--data-dir): %w", cfg.DataDir, err)
		}
		n.store = ps
		n.closers = append(n.closers, func(context.Context) error { return ps.Close() })
	}
	var rs store.RegistryStore = memstore.NewRegistry()
	if ps, ok := n.store.(store.RegistryStore); ok {
		rs = ps
	}
	if dsn := cfg.Registry.PostgresDSN; dsn != "" {
		// The registry shared by a scale-out cluster.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		pg, err := pgstore.Open(ctx, dsn)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("registry.postgres_dsn (--postgres-dsn): %w", err)
		}
		rs = pg
		n.closers = append(n.closers, func(context.Context) error { pg.Close(); return nil })
	}
	reg, err := registry.New(rs, nil)
	if err != nil {
		return nil, fmt.Errorf("device registry: %w", err)
	}
	n.registry = reg
	if listener, public := cfg.PublicListener(); public && !cfg.Auth && !cfg.AllowAnonymous {
		// Mosquitto 2's safe default: nothing anonymous from the network.
		if !hasTenants(reg) {
			return nil, fmt.Errorf("%s is not a loopback address and no authentication is configured: "+
				"create devices (ferry tenant/device/credentials, on a loopback start) and pass --auth (auth: true), "+
				"or pass --allow-anonymous (allow_anonymous: true) to accept anonymous clients from the network", listener)
		}
		cfg.Auth = true
		n.cfg = cfg
		log.Info("authentication on: a listener binds a non-loopback address", slog.String("listener", listener))
	}
	acl, err := auth.NewACL(aclRules(cfg.ACL))
	if err != nil {
		return nil, err
	}
	n.hub = hub.New(hub.Options{
		Store:             n.store,
		ObserveStore:      n.metrics.ObserveStore,
		MaxQueuedMessages: cfg.MQTT.MaxQueuedOffline,
		MaxQueuedBytes:    cfg.MQTT.MaxQueuedOfflineBytes,
		MaxStoredMessages: cfg.MQTT.MaxStoredMessages,
		MaxStoredBytes:    cfg.MQTT.MaxStoredBytes,
		MaxSubscriptions:  cfg.MQTT.MaxSubscriptions,
		MaxRetained:       cfg.MQTT.MaxRetained,
		QueueQoS0:         cfg.MQTT.QueueQoS0Offline,
		Logger:            log,
	})
	n.closers = append(n.closers, n.hub.Close)
	authn := authenticator(cfg, reg)
	n.authn = authn
	watch := newRegistryWatch(reg, log, n.metrics) // registrywatch.go
	var honoOpts *mqttadapter.HonoOptions
	if !cfg.Hono.Disabled {
		n.cmds = command.NewRouter(command.Options{Via: via(reg), ActsFor: actsFor(reg), Logger: log})
		n.closers = append(n.closers, func(context.Context) error { n.cmds.Close(); return nil })
		retention := time.Duration(cfg.Hono.EventRetention)
		openEvents := func(tenant string) error { return amqpapi.OpenEventGroup(n.hub, tenant, retention) }
		var producer downstream.Producer
		if cfg.ScaleOut() {
			m, err := n.startKafkaMessaging()
			if err != nil {
				return nil, err
			}
			producer, openEvents = m, nil // the event log is Kafka's topic
		}
		n.downstream = downstream.New(downstream.Options{
			Hub:            n.hub,
			Commands:       n.cmds,
			Kafka:          producer,
			OpenEvents:     openEvents,
			EventRetention: retention,
			MaxPayloadSize: cfg.Hono.MaxPayloadSize,
			Tenant:         honoTenant(reg),
			Device:         deviceState(reg),
			Logger:         log,
		})
		watch.downstream = n.downstream
		honoOpts = &mqttadapter.HonoOptions{
			Downstream:        n.downstream,
			Commands:          n.cmds,
			ActsFor:           actsFor(reg),
			CommandAckTimeout: time.Duration(cfg.Hono.CommandAckTimeout),
			ConnectionEvents:  cfg.Hono.ConnectionEvents == "events",
		}
	}
	n.mqtt = &mqtt.Server{
		Handler: mqttadapter.New(n.hub, mqttadapter.Options{
			Tenant: config.DefaultTenant, Logger: log, Metrics: n.metrics,
			Authenticator: authn, RequireAuth: cfg.Auth && !cfg.AllowAnonymous,
			AuthConcurrency:  cfg.Login.Concurrency,
			CertLogin:        certLogin(cfg, reg),
			JWT:              jwtLogin(cfg, reg),
			ACL:              acl,
			TenantRules:      tenantRules(reg, log, watch.failed),
			Limiter:          &auth.Limiter{Burst: cfg.Login.FailureBurst, Interval: time.Duration(cfg.Login.FailureInterval), Max: 100_000},
			SessionExpiry311: time.Duration(cfg.MQTT.SessionExpiry311),
			Hono:             honoOpts,
		}),
		Logger:               log,
		MaxPacketSize:        cfg.MQTT.MaxPacketSize,
		ReceiveMaximum:       cfg.MQTT.ReceiveMaximum,
		MaxInflight:          cfg.MQTT.MaxInflight,
		MaxQueued:            cfg.MQTT.MaxQueued,
		ConnectTimeout:       time.Duration(cfg.MQTT.ConnectTimeout),
		IdlePark:             offIfZero(time.Duration(cfg.MQTT.IdlePark)),
		DisconnectLinger:     offIfZero(time.Duration(cfg.MQTT.DisconnectLinger)),
		MaxKeepAlive:         cfg.MQTT.MaxKeepAlive,
		TopicAliasMaximum:    cfg.MQTT.TopicAliasMaximum,
		OutboundTopicAliases: cfg.MQTT.OutboundTopicAliases,
	}
	n.metrics.WatchParked(n.mqtt.Parked)
	pg, _ := rs.(*pgstore.Store)
	if err := watch.start(n.mqtt.Handler.(*mqttadapter.Adapter), authn, pg); err != nil {
		return nil, err
	}
	n.closers = append(n.closers, func(context.Context) error { return watch.stop() })
	n.hub.AddTenant(config.DefaultTenant)
	if err := n.hub.Recover(context.Background(), n.knownTenants()); err != nil {
		return nil, err
	}
	n.metrics.Register(&hubCollector{hub: n.hub})
	if err := n.startBridges(); err != nil { // bridges.go
		return nil, err
	}
	if err := n.startAnalytics(); err != nil { // analytics.go
		return nil, err
	}
	if cfg.ScaleOut() {
		// Before the listeners: a node is ready once it holds the
		// cluster's retained messages.
		k := cfg.Cluster.Kafka
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(k.StartTimeout))
		tlsCfg, err := kafkaTLS(k)
		if err != nil {
			cancel()
			return nil, err
		}
		cl, err := cluster.Start(ctx, n.hub, cluster.Options{
			Brokers:       k.Brokers,
			Topic:         k.Topic,
			RetainedTopic: k.RetainedTopic,
			NodeID:        cfg.Cluster.NodeID,
			TLS:           tlsCfg,
			SASL:          cluster.SASL{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username, Password: k.SASL.Password},
			Logger:        log,
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("cluster.kafka.brokers (--kafka-brokers): %w", err)
		}
		n.cluster = cl
		n.metrics.Register(clusterCollectors(cl)...)
		n.closers = append(n.closers, func(context.Context) error { cl.Close(); return nil })
		log.Info("scale-out mode", slog.String("node", cl.NodeID()), slog.Any("kafka", cfg.Cluster.Kafka.Brokers))
		if n.cmds != nil {
			if err := n.startCommandRelay(cl.NodeID()); err != nil {
				return nil, err
			}
		}
	}

	if err := n.listen(); err != nil {
		return nil, err
	}
	serve := func(what string, run func() error) {
		n.serving++
		go func() {
			err := run()
			switch {
			case errors.Is(err, mqtt.ErrServerClosed), errors.Is(err, http.ErrServerClosed), errors.Is(err, net.ErrClosed):
				err = nil
			case err != nil:
				err = fmt.Errorf("%s: %w", what, err)
			}
			n.served <- err
		}()
	}
	attrs := []any{slog.String("mqtt", n.mqttLn.Addr().String())}
	serve("mqtt listener", func() error { return n.mqtt.Serve(n.mqttLn) })
	if (cfg.CoAP.Addr != "" || cfg.CoAP.DTLSAddr != "") && n.downstream != nil {
		n.coap = coapadapter.New(coapadapter.Options{Downstream: n.downstream, Commands: n.cmds, ActsFor: actsFor(reg), Logger: log})
		if cfg.CoAP.Addr != "" {
			if cfg.Auth && !cfg.AllowAnonymous {
				return nil, fmt.Errorf("coap.addr (--coap-addr) takes unauthenticated devices only: with authentication required, use coap.dtls_addr (--coaps-addr), or --allow-anonymous")
			}
			if err := n.coap.Listen(cfg.CoAP.Addr); err != nil {
				return nil, fmt.Errorf("CoAP listener (--coap-addr): %w", err)
			}
			attrs = append(attrs, slog.String("coap", n.coap.Addr()))
		}
		if cfg.CoAP.DTLSAddr != "" {
			dtls := coapadapter.DTLS{PSK: pskLookup(reg), CertLogin: certLogin(cfg, reg)}
			if t := cfg.MQTT.TLS; t.CertFile != "" && t.KeyFile != "" {
				cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
				if err != nil {
					return nil, fmt.Errorf("coap.dtls_addr with mqtt.tls (--tls-cert, --tls-key): %w", err)
				}
				dtls.Certificate = &cert
			}
			if err := n.coap.ListenDTLS(cfg.CoAP.DTLSAddr, dtls); err != nil {
				return nil, fmt.Errorf("CoAP DTLS listener (--coaps-addr): %w", err)
			}
			attrs = append(attrs, slog.String("coaps", n.coap.DTLSAddr()))
		}
	}
	if n.devLn != nil || n.devTLSLn != nil {
		n.devAMQP = amqpadapter.New(amqpadapter.Options{
			Downstream: n.downstream, Commands: n.cmds,
			Authenticator: authn, Anonymous: !(cfg.Auth && !cfg.AllowAnonymous),
			Tenant: config.DefaultTenant, ActsFor: actsFor(reg), MaxConnections: cfg.AMQP.MaxConnections,
			CertLogin: certLogin(cfg, reg), Logger: log, Metrics: n.metrics,
		})
		if n.devLn != nil {
			if err := n.devAMQP.Serve(n.devLn); err != nil {
				return nil, err
			}
			attrs = append(attrs, slog.String("amqp", n.devLn.Addr().String()))
		}
		if n.devTLSLn != nil {
			if err := n.devAMQP.ServeTLS(n.devTLSLn, n.devTLS); err != nil {
				return nil, err
			}
			attrs = append(attrs, slog.String("amqps", n.devTLSLn.Addr().String()))
		}
	}
	if n.appLn != nil || n.appTLSLn != nil {
		if err := n.startApps(); err != nil {
			return nil, err
		}
		if n.appLn != nil {
			attrs = append(attrs, slog.String("amqp_apps", n.appLn.Addr().String()))
		}
		if n.appTLSLn != nil {
			attrs = append(attrs, slog.String("amqps_apps", n.appTLSLn.Addr().String()))
		}
	}
	if n.tlsLn != nil {
		serve("mqtts listener", func() error { return n.mqtt.Serve(n.tlsLn) })
		attrs = append(attrs, slog.String("mqtts", n.tlsLn.Addr().String()))
	}
	if n.wsLn != nil {
		serve("websocket listener", func() error { return n.mqtt.Serve(n.wsLn) })
		wsNet := n.wsLn.Addr()
		serve("websocket http", func() error { return n.wsHTTP.Serve(n.wsNetLn) })
		attrs = append(attrs, slog.String("ws", "ws://"+wsNet.String()+cfg.MQTT.WebSocket.Path))
	}
	if n.httpLn != nil {
		serve("http", func() error { return n.http.Serve(n.httpLn) })
		attrs = append(attrs, slog.String("http", n.httpLn.Addr().String()))
	}
	if n.httpsLn != nil {
		serve("https", func() error { return n.http.Serve(n.httpsLn) })
		attrs = append(attrs, slog.String("https", n.httpsLn.Addr().String()))
	}
	bgCtx, cancel := context.WithCancel(context.Background())
	n.stopBackground = cancel
	if cfg.MQTT.SysInterval > 0 {
		sys := &systopics.Publisher{Hub: n.hub, Interval: time.Duration(cfg.MQTT.SysInterval), Version: Version}
		if len(n.bridges) > 0 {
			sys.Extra = n.bridgeSysTopics
		}
		n.background.Go(func() { sys.Run(bgCtx) })
	}
	n.ready.Store(true)
	log.Info("ferry started", append(attrs, slog.String("data_dir", cfg.DataDir),
		slog.String("tenant", config.DefaultTenant))...)
	return n, nil
}

// listen opens every configured listener; on error the caller closes
// those already open.
func (n *Node) listen() error {
	cfg := n.cfg
	var err error
	if n.mqttLn, err = net.Listen("tcp", cfg.MQTT.Addr); err != nil {
		return fmt.Errorf("mqtt listener (--mqtt-addr): %w", err)
	}
	if cfg.AMQP.Addr != "" && !cfg.Hono.Disabled {
		if n.devLn, err = net.Listen("tcp", cfg.AMQP.Addr); err != nil {
			return fmt.Errorf("AMQP device listener (--amqp-addr): %w", err)
		}
	}
	if t := cfg.MQTT.TLS; cfg.AMQP.TLSAddr != "" && !cfg.Hono.Disabled {
		if n.devTLS, err = transport.ServerTLS(t.CertFile, t.KeyFile, t.ClientCAFile, t.RequireClientCert, cfg.Auth); err != nil {
			return fmt.Errorf("amqp.tls_addr with mqtt.tls (--tls-cert, --tls-key, --tls-client-ca): %w", err)
		}
		if n.devTLSLn, err = net.Listen("tcp", cfg.AMQP.TLSAddr); err != nil {
			return fmt.Errorf("AMQP TLS device listener (--amqps-addr): %w", err)
		}
	}
	if cfg.AMQP.AppAddr != "" && !cfg.Hono.Disabled {
		if n.appLn, err = net.Listen("tcp", cfg.AMQP.AppAddr); err != nil {
			return fmt.Errorf("northbound AMQP listener (--amqp-app-addr): %w", err)
		}
	}
	if t := cfg.MQTT.TLS; cfg.AMQP.AppTLSAddr != "" && !cfg.Hono.Disabled {
		if n.appTLS, err = transport.ServerTLS(t.CertFile, t.KeyFile, "", false, false); err != nil {
			return fmt.Errorf("amqp.app_tls_addr with mqtt.tls (--tls-cert, --tls-key): %w", err)
		}
		if n.appTLSLn, err = net.Listen("tcp", cfg.AMQP.AppTLSAddr); err != nil {
			return fmt.Errorf("northbound AMQP TLS listener (--amqps-app-addr): %w", err)
		}
	}
	if t := cfg.MQTT.TLS; t.Addr != "" {
		tlsCfg, err := transport.ServerTLS(t.CertFile, t.KeyFile, t.ClientCAFile, t.RequireClientCert, cfg.Auth)
		if err != nil {
			return fmt.Errorf("mqtt.tls (--tls-cert, --tls-key, --tls-client-ca): %w", err)
		}
		ln, err := net.Listen("tcp", t.Addr)
		if err != nil {
			return fmt.Errorf("mqtts listener (--mqtts-addr): %w", err)
		}
		n.tlsLn = tls.NewListener(ln, tlsCfg)
	}
	if ws := cfg.MQTT.WebSocket; ws.Addr != "" {
		if n.wsNetLn, err = net.Listen("tcp", ws.Addr); err != nil {
			return fmt.Errorf("websocket listener (--ws-addr): %w", err)
		}
		n.wsLn = transport.NewWSListener(n.wsNetLn.Addr(), "mqtt")
		mux := http.NewServeMux()
		mux.Handle(ws.Path, n.wsLn)
		n.wsHTTP = newHTTPServer(mux)
	}
	if cfg.HTTP.Addr != "" || cfg.HTTP.TLSAddr != "" {
		mux := n.opsMux(&n.ready)
		if err := n.mountRegistry(mux); err != nil {
			return err
		}
		if err := n.mountAnalytics(mux); err != nil {
			return err
		}
		if cfg.HTTP.Addr != "" {
			if n.httpLn, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
				return fmt.Errorf("http listener (--http-addr): %w", err)
			}
		}
		if cfg.HTTP.TLSAddr != "" {
			t := cfg.MQTT.TLS
			tlsCfg, err := transport.ServerTLS(t.CertFile, t.KeyFile, t.ClientCAFile, false, cfg.Auth)
			if err != nil {
				return fmt.Errorf("http.tls_addr with mqtt.tls (--tls-cert, --tls-key, --tls-client-ca): %w", err)
			}
			ln, err := net.Listen("tcp", cfg.HTTP.TLSAddr)
			if err != nil {
				return fmt.Errorf("https listener (--https-addr): %w", err)
			}
			n.httpsLn = tls.NewListener(ln, tlsCfg)
		}
		var h http.Handler = mux
		if n.downstream != nil {
			h = httpadapter.New(httpadapter.Options{
				Downstream: n.downstream, Commands: n.cmds,
				Authenticator: n.authn, RequireAuth: cfg.Auth && !cfg.AllowAnonymous,
				CertLogin: certLogin(cfg, n.registry), JWT: jwtLogin(cfg, n.registry),
				Tenant: config.DefaultTenant, ActsFor: actsFor(n.registry), Logger: n.log,
			}).Wrap(mux)
		}
		n.http = newHTTPServer(h)
		if err := n.mountConsole(mux); err != nil { // console.go
			return err
		}
	}
	return nil
}

// mountRegistry serves the device registry management API under /v1/,
// protected by the admin password (generated on first start when none is
// configured, so the API is never open).
func (n *Node) mountRegistry(mux *http.ServeMux) error {
	var err error
	pw := n.cfg.AdminPassword
	if pw == "" {
		var path string
		var created bool
		pw, path, created, err = registryapi.LoadOrCreateAdminPassword(n.cfg.DataDir)
		if err != nil {
			return fmt.Errorf("admin password (--admin-password): %w", err)
		}
		if created {
			n.log.Info("generated the password of user admin of the registry API", slog.String("file", path))
		}
	}
	mux.Handle("/v1/", registryapi.New(n.registry, registryapi.Options{AdminPassword: pw, Logger: n.log}))
	return nil
}

// adminPassword is the configured admin password or the generated one.
func (n *Node) adminPassword() (string, error) {
	if pw := n.cfg.AdminPassword; pw != "" {
		return pw, nil
	}
	pw, _, _, err := registryapi.LoadOrCreateAdminPassword(n.cfg.DataDir)
	return pw, err
}

// authenticator is the registry when --auth is on: without it, user names
// are not checked and every client is in the default tenant.
func authenticator(cfg config.Config, reg *registry.Registry) mqttadapter.Authenticator {
	if !cfg.Auth {
		return nil
	}
	return auth.NewCache(reg, time.Duration(cfg.Login.CacheTTL), 100_000)
}

// hasTenants reports whether the registry holds at least one tenant.
func hasTenants(reg *registry.Registry) bool {
	res, err := reg.SearchTenants(context.Background(), registry.Query{PageSize: 1})
	return err == nil && res.Total > 0
}

// knownTenants are the tenants whose retained messages Recover loads: the
// default tenant and every tenant of the registry (tenants with sessions
// are found from the sessions).
func (n *Node) knownTenants() []string {
	tenants := []string{config.DefaultTenant}
	ctx := context.Background()
	for offset := 0; ; offset += registry.MaxPageSize {
		res, err := n.registry.SearchTenants(ctx, registry.Query{PageSize: registry.MaxPageSize, PageOffset: offset})
		if err != nil { // none (not found) or a store error: recover what is known
			return tenants
		}
		for _, t := range res.Result {
			tenants = append(tenants, t.ID)
		}
		if offset+len(res.Result) >= res.Total || len(res.Result) == 0 {
			return tenants
		}
	}
}

func aclRules(rules []config.ACLRule) []auth.Rule {
	out := make([]auth.Rule, len(rules))
	for i, r := range rules {
		out[i] = auth.Rule{Tenant: r.Tenant, Device: r.Device, User: r.User, Access: r.Access, Topic: r.Topic, Deny: r.Deny}
	}
	return out
}

// tenantRules reads a tenant's own access rules from its registry entry
// (ext.acl, a list of rules like the config file's, tenant implied). A
// tenant the registry does not hold has none; a registry that cannot be
// read is an error (counted in failed; the adapter logs it and refuses the
// client), since no rules would allow everything.
func tenantRules(reg *registry.Registry, log *slog.Logger, failed func(op string)) func(context.Context, string) ([]auth.Rule, error) {
	return func(ctx context.Context, tenant string) ([]auth.Rule, error) {
		t, _, err := reg.GetTenant(ctx, tenant)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return nil, nil
		case err != nil:
			failed("tenant-rules")
			return nil, fmt.Errorf("access rules of tenant %q: %w", tenant, err)
		}
		return rulesOf(tenant, t, log), nil
	}
}

// rulesOf returns the access rules of tenant t (ext.acl).
func rulesOf(tenant string, t registry.Tenant, log *slog.Logger) []auth.Rule {
	if t.Ext["acl"] == nil {
		return nil
	}
	raw, err := json.Marshal(t.Ext["acl"])
	var rules []auth.Rule
	if err == nil {
		err = json.Unmarshal(raw, &rules)
	}
	for i := range rules {
		rules[i].Tenant = tenant
	}
	if err == nil {
		_, err = auth.NewACL(rules)
	}
	if err != nil {
		log.Warn("tenant access rules ignored", slog.String("tenant", tenant), slog.Any("err", err))
		return denyAll(tenant)
	}
	return rules
}

// denyAll is the rule set of a tenant whose rules do not parse: it meant
// to restrict, so everything is denied rather than nothing.
func denyAll(tenant string) []auth.Rule {
	return []auth.Rule{{Tenant: tenant, Topic: "#", Deny: true}}
}

// certLogin logs devices in by TLS client certificate when --auth is on.
// jwtLogin checks JWT logins against the registry's rpk credentials when
// --auth is on.
func jwtLogin(cfg config.Config, reg *registry.Registry) mqttadapter.JWTChecker {
	if !cfg.Auth {
		return nil
	}
	return reg
}

func certLogin(cfg config.Config, reg *registry.Registry) *auth.CertLogin {
	if !cfg.Auth {
		return nil
	}
	return &auth.CertLogin{Trust: reg}
}

// DataDir is the node's data directory.
func (n *Node) DataDir() string { return n.cfg.DataDir }

// Registry is the node's device registry.
func (n *Node) Registry() *registry.Registry { return n.registry }

// closeAll closes what closers hold, last opened first: the cluster, the
// registry watch, the hub (its timers and store writes), the registry's
// database, the store. Each gets ctx; the store is closed even when ctx
// has ended, so that nothing is left half-written.
func (n *Node) closeAll(ctx context.Context) error {
	var err error
	for i := len(n.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, n.closers[i](ctx))
	}
	n.closers = nil
	return err
}

func (n *Node) closeListeners() {
	if n.apps != nil {
		n.apps.Close()
	}
	if n.devAMQP != nil {
		n.devAMQP.Close()
	}
	if n.coap != nil {
		n.coap.Close()
	}
	for _, l := range []net.Listener{n.mqttLn, n.appLn, n.appTLSLn, n.devLn, n.devTLSLn, n.tlsLn, n.wsNetLn, n.httpLn, n.httpsLn} {
		if l != nil {
			l.Close()
		}
	}
}

// TLSAddr is the address of the MQTT over TLS listener, nil when it is off.
func (n *Node) TLSAddr() net.Addr {
	if n.tlsLn == nil {
		return nil
	}
	return n.tlsLn.Addr()
}

// WebSocketAddr is the address of the MQTT over WebSocket listener, nil
// when it is off.
func (n *Node) WebSocketAddr() net.Addr {
	if n.wsLn == nil {
		return nil
	}
	return n.wsLn.Addr()
}

// HTTPSAddr is the address of the HTTP over TLS endpoint, nil when it is
// off.
func (n *Node) HTTPSAddr() net.Addr {
	if n.httpsLn == nil {
		return nil
	}
	return n.httpsLn.Addr()
}

// HTTPAddr is the address of the HTTP endpoint, nil when it is off.
func (n *Node) HTTPAddr() net.Addr {
	if n.httpLn == nil {
		return nil
	}
	return n.httpLn.Addr()
}

// CoAPAddr is the UDP address of the CoAP adapter, "" when it is off.
func (n *Node) CoAPAddr() string {
	if n.coap == nil {
		return ""
	}
	return n.coap.Addr()
}

// CoAPSAddr is the UDP address of the CoAP adapter's DTLS listener, ""
// when it is off.
func (n *Node) CoAPSAddr() string {
	if n.coap == nil {
		return ""
	}
	return n.coap.DTLSAddr()
}

// AMQPSAddr is the address of the AMQP device listener over TLS, nil when
// it is off.
func (n *Node) AMQPSAddr() net.Addr {
	if n.devTLSLn == nil {
		return nil
	}
	return n.devTLSLn.Addr()
}

// AMQPAddr is the address of the AMQP device listener, nil when it is off.
func (n *Node) AMQPAddr() net.Addr {
	if n.devLn == nil {
		return nil
	}
	return n.devLn.Addr()
}

// AppTLSAddr is the address of the northbound AMQP listener over TLS, nil
// when it is off.
func (n *Node) AppTLSAddr() net.Addr {
	if n.appTLSLn == nil {
		return nil
	}
	return n.appTLSLn.Addr()
}

// AppAddr is the address of the northbound AMQP listener, nil when it is
// off.
func (n *Node) AppAddr() net.Addr {
	if n.appLn == nil {
		return nil
	}
	return n.appLn.Addr()
}

// MQTTAddr is the address the MQTT listener is bound to.
func (n *Node) MQTTAddr() net.Addr { return n.mqttLn.Addr() }

// Hub is the node's router.
func (n *Node) Hub() *hub.Hub { return n.hub }

// Shutdown stops accepting, disconnects clients and waits for the
// components to finish, bounded by ctx.
func (n *Node) Shutdown(ctx context.Context) error {
	n.ready.Store(false)
	n.stopBackground()
	n.background.Wait()
	// MQTT first: it closes its listeners (the WebSocket one included) and
	// every connection, which ends the WebSocket handlers.
	err := n.mqtt.Shutdown(ctx)
	if n.devAMQP != nil {
		err = errors.Join(err, n.devAMQP.Close())
	}
	if n.coap != nil {
		err = errors.Join(err, n.coap.Close())
	}
	if n.apps != nil {
		err = errors.Join(err, n.apps.Close())
	}
	for _, s := range []*http.Server{n.wsHTTP, n.http} {
		if s != nil {
			err = errors.Join(err, s.Shutdown(ctx))
		}
	}
wait:
	for ; n.serving > 0; n.serving-- {
		select {
		case serr := <-n.served:
			err = errors.Join(err, serr)
		case <-ctx.Done():
			err = errors.Join(err, ctx.Err())
			break wait
		}
	}
	// Last: nothing writes to the store once the connections are gone
	// (or, past ctx, once the hub's store calls are cancelled).
	return errors.Join(err, n.closeAll(ctx))
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
		return errors.Join(err, n.Shutdown(sctx))
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

// offIfZero maps a config duration whose 0 means off (mqtt.idle_park,
// mqtt.disconnect_linger) to mqtt.Server's convention, where 0 means the
// default and a negative duration off.
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// kafkaTLS is the TLS configuration of the cluster's Kafka clients, nil
// without TLS.
// startKafkaMessaging starts Hono's Kafka messaging on the cluster's
// brokers.
func (n *Node) startKafkaMessaging() (*kafkaapi.Messaging, error) {
	cfg := n.cfg
	k := cfg.Cluster.Kafka
	client, how, err := n.kafkaClient("ferry-hono")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(k.StartTimeout))
	defer cancel()
	m, err := kafkaapi.Start(ctx, kafkaapi.Options{
		Client:       client,
		Topics:       kafkaapi.Topics{Prefix: cfg.Hono.Kafka.TopicPrefix},
		Commands:     n.cmds,
		SkipCommands: !cfg.Hono.Kafka.ConsumeCommands,
		CommandGroup: cfg.Hono.Kafka.CommandGroup,
		Logger:       n.log,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster.kafka.brokers (--kafka-brokers): Hono's Kafka messaging on %v (%s): %w", k.Brokers, how, err)
	}
	n.closers = append(n.closers, func(context.Context) error { m.Close(); return nil })
	n.metrics.Register(kafkaMessagingCollectors(m)...)
	if cfg.Registry.PostgresDSN == "" {
		n.log.Info("Kafka messaging with the embedded registry: right for one node; nodes that share the Kafka cluster need --postgres-dsn")
	}
	return m, nil
}

// startCommandRelay routes commands to devices on the other nodes of the
// cluster.
func (n *Node) startCommandRelay(nodeID string) error {
	k := n.cfg.Cluster.Kafka
	client, _, err := n.kafkaClient("ferry-cmdroute-" + nodeID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(k.StartTimeout))
	defer cancel()
	r, err := cmdroute.Start(ctx, cmdroute.Options{Client: client, NodeID: nodeID, Router: n.cmds, Logger: n.log})
	if err != nil {
		return fmt.Errorf("cluster.kafka.brokers (--kafka-brokers): command routing between nodes: %w", err)
	}
	n.closers = append(n.closers, func(context.Context) error { r.Close(); return nil })
	return nil
}

// kafkaClient is the franz-go connection options of a Kafka client of the
// node named clientID, on the cluster's brokers, TLS and SASL, and how it
// connects, for errors.
func (n *Node) kafkaClient(clientID string) ([]kgo.Opt, string, error) {
	k := n.cfg.Cluster.Kafka
	tlsCfg, err := kafkaTLS(k)
	if err != nil {
		return nil, "", err
	}
	opts, how, err := cluster.ClientOpts(k.Brokers, tlsCfg, cluster.SASL{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username,
		Password: k.SASL.Password}, clientID, n.log)
	if err != nil {
		return nil, "", fmt.Errorf("cluster.kafka: %w", err)
	}
	return opts, how, nil
}

func kafkaTLS(k config.Kafka) (*tls.Config, error) {
	if !k.TLS {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if k.CAFile != "" {
		pem, err := os.ReadFile(k.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.kafka.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.kafka.ca_file: no PEM certificate in %s", k.CAFile)
		}
	}
	return c, nil
}
