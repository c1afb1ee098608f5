package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/gateway"
)

// newGatewayCmd is `ferry gateway`: MQTT clients on an external AMQP 1.0
// network (docs/gateway.md).
func newGatewayCmd() *cobra.Command {
	var (
		configPath, mqttAddr, network, addresses, ca, httpAddr, logLevel, logFormat string
		forward                                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Serve MQTT clients on an external AMQP 1.0 network (EnMasse's MQTT gateway), holding no messages",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			if err := applyEnv(fl); err != nil {
				return err
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			set := func(name string, apply func()) {
				if fl.Changed(name) {
					apply()
				}
			}
			set("mqtt-addr", func() { cfg.MQTT.Addr = mqttAddr })
			set("amqp-network", func() { cfg.Gateway.AMQPNetwork = network })
			set("amqp-network-addresses", func() { cfg.Gateway.Addresses = addresses })
			set("amqp-network-ca", func() { cfg.Gateway.CAFile = ca })
			set("forward-credentials", func() { cfg.Gateway.ForwardCredentials = forward })
			set("http-addr", func() { cfg.Gateway.HTTPAddr = httpAddr })
			set("log-level", func() { cfg.Log.Level = logLevel })
			set("log-format", func() { cfg.Log.Format = logFormat })
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return gateway.Run(ctx, cfg, cfg.Logger(cmd.ErrOrStderr()))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "YAML configuration file (sections gateway and mqtt)")
	fl.StringVar(&mqttAddr, "mqtt-addr", "127.0.0.1:1883", "MQTT listen address (host:port)")
	fl.StringVar(&network, "amqp-network", "", "the AMQP 1.0 network: amqp://[user:password@]host:port or amqps://... (required)")
	fl.StringVar(&addresses, "amqp-network-addresses", "mqtt", "how topics map to the network's addresses: mqtt (verbatim, as Ferry and EnMasse) or rabbitmq (/topic/a.b)")
	fl.StringVar(&ca, "amqp-network-ca", "", "PEM CA bundle verifying an amqps:// network (default: the system's roots)")
	fl.BoolVar(&forward, "forward-credentials", false, "log each MQTT client in to the network with its own user name and password (SASL PLAIN) when --amqp-network names no user")
	fl.StringVar(&httpAddr, "http-addr", "", "HTTP address of /metrics and /healthz (empty: off)")
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}
