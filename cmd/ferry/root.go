package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ferry",
		Short:         "Ferry: an IoT messaging hub (MQTT, AMQP 1.0, HTTP, Kafka)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(append([]*cobra.Command{
		newServeCmd(),
		newVersionCmd(),
		newBenchCmd(),
		newAppCmd(),
		newKafkaCmd(),
		newClientsCmd(),
		newQueryCmd(),
		newGatewayCmd(),
	}, newRegistryCmds()...)...)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Ferry's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "ferry", buildVersion())
		},
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

// serveFlags are the flags of `ferry serve`; each has an env twin
// FERRY_<NAME> (dashes become underscores).
type serveFlags struct {
	configPath     string
	mqttAddr       string
	httpAddr       string
	pprof          bool
	console        bool
	mqttsAddr      string
	tlsCert        string
	tlsKey         string
	tlsClientCA    string
	tlsRequireCert bool
	wsAddr         string
	adminPassword  string
	auth           bool
	dataDir        string
	logLevel       string
	logFormat      string
	allowAnonymous bool
	printConfig    bool
	kafkaBrokers   []string
	postgresDSN    string
	nodeID         string
	kafkaPassword  string
	amqpAppAddr    string
	amqpsAppAddr   string
	amqpAddr       string
	amqpsAddr      string
	httpsAddr      string
	kafkaPrefix    string
	coapsAddr      string
	coapAddr       string
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Ferry hub (embedded mode: one process, one data directory)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd.Flags(), &f)
			if err != nil {
				return err
			}
			if f.printConfig {
				out, err := cfg.YAML()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			node.Version = buildVersion()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return node.Run(ctx, cfg, cfg.Logger(cmd.ErrOrStderr()))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configPath, "config", "", "YAML configuration file")
	fl.StringVar(&f.mqttAddr, "mqtt-addr", "127.0.0.1:1883", "MQTT listen address (host:port)")
	fl.StringVar(&f.coapAddr, "coap-addr", "", "CoAP (UDP) listen address of devices, e.g. 127.0.0.1:5683 (Hono's CoAP adapter, unauthenticated devices; empty: off)")
	fl.StringVar(&f.coapsAddr, "coaps-addr", "", "CoAP over DTLS (PSK: identity auth-id@tenant) listen address of devices, e.g. 127.0.0.1:5684 (empty: off)")
	fl.StringVar(&f.amqpsAddr, "amqps-addr", "", "AMQP 1.0 over TLS listen address of devices, e.g. 127.0.0.1:5671 (needs --tls-cert, --tls-key; SASL EXTERNAL with client certificates)")
	fl.StringVar(&f.amqpAddr, "amqp-addr", "127.0.0.1:5672", "AMQP 1.0 listen address of devices (Hono's AMQP adapter; empty: off)")
	fl.StringVar(&f.amqpAppAddr, "amqp-app-addr", "127.0.0.1:15672", "northbound AMQP 1.0 listen address of applications (Hono's telemetry/event/command addresses; empty: off)")
	fl.StringVar(&f.amqpsAppAddr, "amqps-app-addr", "", "the northbound AMQP 1.0 listener over TLS, e.g. 127.0.0.1:15671 (needs --tls-cert, --tls-key)")
	fl.StringVar(&f.mqttsAddr, "mqtts-addr", "", "MQTT over TLS listen address, e.g. 127.0.0.1:8883 (needs --tls-cert, --tls-key)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate chain of the TLS listener")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of the TLS listener")
	fl.StringVar(&f.tlsClientCA, "tls-client-ca", "", "PEM CA bundle for verifying client certificates")
	fl.BoolVar(&f.tlsRequireCert, "tls-require-client-cert", false, "refuse TLS clients without a valid client certificate")
	fl.StringVar(&f.wsAddr, "ws-addr", "", "MQTT over WebSocket listen address, e.g. 127.0.0.1:8083 (path /mqtt)")
	fl.BoolVar(&f.auth, "auth", false, "devices log in as auth-id@tenant with registry credentials; anonymous clients refused unless --allow-anonymous")
	fl.StringVar(&f.adminPassword, "admin-password", "", "password of user admin of the device registry API (default: generated into --data-dir)")
	fl.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP address of Hono's HTTP device adapter, the registry API, /metrics, /healthz and /readyz (empty: off)")
	fl.StringVar(&f.httpsAddr, "https-addr", "", "the same over TLS, e.g. 127.0.0.1:8443 (needs --tls-cert, --tls-key; devices may log in with client certificates)")
	fl.BoolVar(&f.pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ on --http-addr")
	fl.BoolVar(&f.console, "console", true, "serve the web console under /console/ on --http-addr (docs/console.md)")
	fl.StringVar(&f.dataDir, "data-dir", "./ferry-data", "data directory of the embedded mode")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.BoolVar(&f.allowAnonymous, "allow-anonymous", false, "accept clients without credentials on non-loopback addresses")
	fl.BoolVar(&f.printConfig, "print-config", false, "print the effective configuration as YAML and exit")
	fl.StringSliceVar(&f.kafkaBrokers, "kafka-brokers", nil, "Kafka bootstrap servers (host:port,...): Hono's Kafka messaging, and a node of a scale-out cluster (several nodes need --postgres-dsn)")
	fl.StringVar(&f.kafkaPrefix, "kafka-topic-prefix", "", "prefix of every Hono Kafka topic name (hono.kafka.topic_prefix), for shared Kafka clusters")
	fl.StringVar(&f.postgresDSN, "postgres-dsn", "", "PostgreSQL connection string of the registry shared by a scale-out cluster")
	fl.StringVar(&f.nodeID, "node-id", "", "this node's unique name in a scale-out cluster (default: the host name and a random suffix)")
	fl.StringVar(&f.kafkaPassword, "kafka-sasl-password", "", "SASL password of the node's Kafka user (cluster.kafka.sasl)")
	return cmd
}

// loadConfig builds the effective configuration: defaults, then the config
// file, then FERRY_* environment variables, then flags given on the command
// line.
func loadConfig(fl *pflag.FlagSet, f *serveFlags) (config.Config, error) {
	if err := applyEnv(fl); err != nil {
		return config.Config{}, err
	}
	cfg, err := config.Load(f.configPath)
	if err != nil {
		return cfg, err
	}
	set := func(name string, apply func()) {
		if fl.Changed(name) {
			apply()
		}
	}
	set("mqtt-addr", func() { cfg.MQTT.Addr = f.mqttAddr })
	set("data-dir", func() { cfg.DataDir = f.dataDir })
	set("http-addr", func() { cfg.HTTP.Addr = f.httpAddr })
	set("mqtts-addr", func() { cfg.MQTT.TLS.Addr = f.mqttsAddr })
	set("amqp-app-addr", func() { cfg.AMQP.AppAddr = f.amqpAppAddr })
	set("amqps-app-addr", func() { cfg.AMQP.AppTLSAddr = f.amqpsAppAddr })
	set("amqp-addr", func() { cfg.AMQP.Addr = f.amqpAddr })
	set("amqps-addr", func() { cfg.AMQP.TLSAddr = f.amqpsAddr })
	set("https-addr", func() { cfg.HTTP.TLSAddr = f.httpsAddr })
	set("coaps-addr", func() { cfg.CoAP.DTLSAddr = f.coapsAddr })
	set("coap-addr", func() { cfg.CoAP.Addr = f.coapAddr })
	set("tls-cert", func() { cfg.MQTT.TLS.CertFile = f.tlsCert })
	set("tls-key", func() { cfg.MQTT.TLS.KeyFile = f.tlsKey })
	set("tls-client-ca", func() { cfg.MQTT.TLS.ClientCAFile = f.tlsClientCA })
	set("tls-require-client-cert", func() { cfg.MQTT.TLS.RequireClientCert = f.tlsRequireCert })
	set("ws-addr", func() { cfg.MQTT.WebSocket.Addr = f.wsAddr })
	set("admin-password", func() { cfg.AdminPassword = f.adminPassword })
	set("auth", func() { cfg.Auth = f.auth })
	set("pprof", func() { cfg.HTTP.Pprof = f.pprof })
	set("console", func() { cfg.HTTP.Console = f.console })
	set("log-level", func() { cfg.Log.Level = f.logLevel })
	set("log-format", func() { cfg.Log.Format = f.logFormat })
	set("allow-anonymous", func() { cfg.AllowAnonymous = f.allowAnonymous })
	set("kafka-brokers", func() { cfg.Cluster.Kafka.Brokers = f.kafkaBrokers })
	set("kafka-topic-prefix", func() { cfg.Hono.Kafka.TopicPrefix = f.kafkaPrefix })
	set("postgres-dsn", func() { cfg.Registry.PostgresDSN = f.postgresDSN })
	set("node-id", func() { cfg.Cluster.NodeID = f.nodeID })
	set("kafka-sasl-password", func() { cfg.Cluster.Kafka.SASL.Password = f.kafkaPassword })
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// applyEnv sets every flag not given on the command line from its
// FERRY_<NAME> environment variable, when that is set. Flags from the
// command line win over the environment; the environment wins over the
// config file (flags set here count as changed).
func applyEnv(fl *pflag.FlagSet) error {
	var firstErr error
	fl.VisitAll(func(flag *pflag.Flag) {
		if flag.Changed || firstErr != nil {
			return
		}
		name := "FERRY_" + strings.ToUpper(strings.ReplaceAll(flag.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if err := fl.Set(flag.Name, v); err != nil {
			firstErr = fmt.Errorf("environment variable %s (flag --%s): %w", name, flag.Name, err)
		}
	})
	return firstErr
}
