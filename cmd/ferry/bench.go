package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-iot/ferry/internal/bench"
)

// benchOptions are the flags shared by every `ferry bench` scenario.
type benchOptions struct {
	addr   string
	runs   int
	output string
	label  string // scenario name in kv output
}

// report prints one run: a human line (text), or its metrics on w and the
// human line on stderr (kv).
func (o *benchOptions) report(cmd *cobra.Command, run int, human fmt.Stringer, metrics []bench.Metric) {
	if o.output == "kv" {
		for _, m := range metrics {
			fmt.Fprintf(cmd.OutOrStdout(), "run=%d %s\n", run, m)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "run %d: %s\n", run, human)
		return
	}
	fmt.Fprintf(cmd.OutOrStdout(), "run %d: %s\n", run, human)
}

// runAll runs a scenario o.runs times and reports each run with the
// metrics that metrics(run, result) returns.
func runAll[R fmt.Stringer](o *benchOptions, cmd *cobra.Command, run func(context.Context) (R, error), metrics func(int, R) []bench.Metric) error {
	for i := 1; i <= o.runs; i++ {
		res, err := run(cmd.Context())
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		o.report(cmd, i, res, metrics(i, res))
	}
	return nil
}

func (o *benchOptions) check() error {
	if o.runs < 1 {
		return fmt.Errorf("--runs must be at least 1")
	}
	if o.output != "text" && o.output != "kv" {
		return fmt.Errorf("--output %q: text or kv", o.output)
	}
	return nil
}

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate MQTT load against a broker (Ferry or any other) and measure it",
		Long: "Generate MQTT 3.1.1 load against a broker (Ferry or any other) and measure throughput,\n" +
			"latency, memory per idle connection and loss. A figure counts only with 0% loss.\n" +
			"bench/run.sh runs every scenario against Ferry, Mosquitto and mochi-mqtt.",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.addr, "addr", "127.0.0.1:1883", "broker address")
	pf.IntVar(&o.runs, "runs", 1, "number of runs")
	pf.StringVar(&o.output, "output", "text", "text, or kv: one key=value line per metric and run (read by `ferry bench report`)")
	pf.StringVar(&o.label, "label", "", "scenario name in kv output (default: derived from the scenario and its QoS)")
	cmd.AddCommand(newBenchFanInCmd(&o), newBenchFanOutCmd(&o), newBenchHonoCmd(&o), newBenchLatencyCmd(&o), newBenchIdleCmd(&o), newBenchSoakCmd(&o), newBenchReportCmd())
	return cmd
}

func (o *benchOptions) scenario(def string) string {
	if o.label != "" {
		return o.label
	}
	return def
}

func newBenchFanInCmd(o *benchOptions) *cobra.Command {
	f := bench.FanIn{}
	var qos uint8
	cmd := &cobra.Command{
		Use:   "fanin",
		Short: "N publishers -> 1 wildcard subscriber; delivered msgs/s and loss per run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if qos > 1 {
				return fmt.Errorf("--qos %d: the fan-in scenario supports QoS 0 and 1", qos)
			}
			if f.Publishers < 1 || f.Messages < 1 || f.Payload < 0 {
				return fmt.Errorf("--publishers and --messages must be at least 1, --payload at least 0")
			}
			f.Addr, f.QoS = o.addr, qos
			name := o.scenario(fmt.Sprintf("fanin-qos%d", qos))
			return runAll(o, cmd, f.Run, func(_ int, res bench.Result) []bench.Metric { return res.Metrics(name, "msgs/s") })
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.Publishers, "publishers", 8, "publishing clients")
	fl.IntVar(&f.Messages, "messages", 100000, "messages per publisher")
	fl.IntVar(&f.Payload, "payload", 64, "payload size, bytes")
	fl.Uint8Var(&qos, "qos", 0, "QoS of publishes and of the subscription (0 or 1)")
	fl.IntVar(&f.Window, "window", 64, "unacknowledged QoS 1 publishes per publisher")
	fl.DurationVar(&f.Idle, "idle", 3*time.Second, "silence after which undelivered messages count as lost")
	return cmd
}

func newBenchHonoCmd(o *benchOptions) *cobra.Command {
	h := bench.Hono{}
	var qos uint8
	cmd := &cobra.Command{
		Use:   "hono",
		Short: "Hono devices (MQTT) -> Ferry -> a northbound AMQP application, or commands back; msgs/s and latency",
		Long: "Devices publish telemetry (QoS 0) or events (QoS 1, settled one by one by the application) on\n" +
			"Hono's topics to --addr, and one application receives them on --amqp-addr; or (--mode command) the\n" +
			"application sends request/response commands that the devices answer. --no-consumer measures the\n" +
			"devices and Ferry's ingest alone (telemetry, dropped by Ferry).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if h.Devices < 1 || h.Messages < 1 {
				return fmt.Errorf("--devices and --messages must be at least 1")
			}
			if h.NoConsumer && h.Mode != "telemetry" {
				return fmt.Errorf("--no-consumer needs --mode telemetry")
			}
			if qos > 1 {
				return fmt.Errorf("--qos %d: telemetry is QoS 0 or 1", qos)
			}
			if len(h.KafkaBrokers) > 0 && h.Mode != "telemetry" && h.Mode != "event" {
				return fmt.Errorf("--kafka-brokers needs --mode telemetry or event")
			}
			h.QoS = qos
			h.Addr = o.addr
			name := o.scenario("hono-" + h.Mode)
			return runAll(o, cmd, h.Run, func(_ int, res bench.HonoResult) []bench.Metric { return res.Metrics(name, "msgs/s") })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&h.AMQPAddr, "amqp-addr", "127.0.0.1:15672", "Ferry's northbound AMQP address")
	fl.StringVar(&h.Mode, "mode", "telemetry", "telemetry, event, command, http (telemetry through Hono's HTTP adapter at --http-addr), amqp (unsettled telemetry through the AMQP device adapter at --device-amqp-addr), coap or coap-non (CON or NON PUTs to --coap-addr)")
	fl.StringVar(&h.HTTPAddr, "http-addr", "127.0.0.1:8080", "Ferry's HTTP address (--mode http)")
	fl.StringVar(&h.DeviceAMQPAddr, "device-amqp-addr", "127.0.0.1:5672", "Ferry's AMQP device address (--mode amqp)")
	fl.StringVar(&h.CoAPAddr, "coap-addr", "127.0.0.1:5683", "Ferry's CoAP address (--mode coap, coap-non)")
	fl.StringVar(&h.Tenant, "tenant", "DEFAULT_TENANT", "tenant of the devices (unauthenticated: in the topic)")
	fl.IntVar(&h.Devices, "devices", 8, "device connections")
	fl.IntVar(&h.Messages, "messages", 50000, "messages per device (command mode: commands in all)")
	fl.IntVar(&h.Payload, "payload", 64, "payload size, bytes (at least 8: the send time)")
	fl.Uint32Var(&h.Credit, "credit", 1000, "credit of the application's receiver")
	fl.IntVar(&h.Window, "window", 64, "unacknowledged QoS 1 publishes per device; outstanding commands")
	fl.IntVar(&h.Rate, "rate", 0, "messages per second in all (0: as fast as possible); for latency below saturation")
	fl.BoolVar(&h.NoConsumer, "no-consumer", false, "publish without an application (the generator's and ingest's rate)")
	fl.DurationVar(&h.Idle, "idle", 3*time.Second, "silence after which undelivered messages count as lost")
	fl.Uint8Var(&qos, "qos", 0, "QoS of the devices' telemetry (0 or 1; events are 1)")
	fl.StringSliceVar(&h.KafkaBrokers, "kafka-brokers", nil, "read hono.telemetry|event.<tenant> from these Kafka brokers instead of the northbound AMQP API (Ferry with --kafka-brokers)")
	return cmd
}

func newBenchFanOutCmd(o *benchOptions) *cobra.Command {
	f := bench.FanOut{}
	var qos uint8
	cmd := &cobra.Command{
		Use:   "fanout",
		Short: "1 publisher -> N subscribers of its topic; deliveries/s and loss per run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if qos > 1 {
				return fmt.Errorf("--qos %d: the fan-out scenario supports QoS 0 and 1", qos)
			}
			if f.Subscribers < 1 || f.Messages < 1 || f.Payload < 0 {
				return fmt.Errorf("--subscribers and --messages must be at least 1, --payload at least 0")
			}
			f.Addr, f.QoS = o.addr, qos
			name := o.scenario(fmt.Sprintf("fanout-qos%d", qos))
			return runAll(o, cmd, f.Run, func(_ int, res bench.Result) []bench.Metric { return res.Metrics(name, "deliveries/s") })
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.Subscribers, "subscribers", 50, "subscribing clients, each receiving every message")
	fl.IntVar(&f.Messages, "messages", 20000, "messages published")
	fl.IntVar(&f.Payload, "payload", 64, "payload size, bytes")
	fl.Uint8Var(&qos, "qos", 0, "QoS of publishes and of the subscriptions (0 or 1)")
	fl.IntVar(&f.Window, "window", 64, "unacknowledged QoS 1 publishes")
	fl.DurationVar(&f.Idle, "idle", 3*time.Second, "silence after which undelivered messages count as lost")
	return cmd
}

func newBenchLatencyCmd(o *benchOptions) *cobra.Command {
	l := bench.Latency{}
	var qos uint8
	cmd := &cobra.Command{
		Use:   "latency",
		Short: "1 publisher paced at a fixed rate -> 1 subscriber; p50/p99 latency and loss per run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if qos > 1 {
				return fmt.Errorf("--qos %d: the latency scenario supports QoS 0 and 1", qos)
			}
			if l.Rate < 1 || l.Duration <= 0 || l.Warmup < 0 || l.Warmup >= l.Duration {
				return fmt.Errorf("--rate must be at least 1, --duration positive and --warmup in [0, duration)")
			}
			l.Addr, l.QoS = o.addr, qos
			name := o.scenario(fmt.Sprintf("latency-%dk-qos%d", l.Rate/1000, qos))
			if l.Rate%1000 != 0 {
				name = o.scenario(fmt.Sprintf("latency-%d-qos%d", l.Rate, qos))
			}
			return runAll(o, cmd, l.Run, func(run int, res bench.LatencyResult) []bench.Metric {
				if res.Behind > 50*time.Millisecond {
					fmt.Fprintf(cmd.ErrOrStderr(), "run %d: the publisher fell %v behind its schedule: the generator, not the broker, set the pace\n", run, res.Behind.Round(time.Millisecond))
				}
				return res.Metrics(name)
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&l.Rate, "rate", 16000, "messages per second")
	fl.DurationVar(&l.Duration, "duration", 3*time.Second, "how long to publish")
	fl.DurationVar(&l.Warmup, "warmup", 500*time.Millisecond, "first part of the run left out of the percentiles")
	fl.IntVar(&l.Payload, "payload", 64, "payload size, bytes (at least 16: sequence number and send time)")
	fl.Uint8Var(&qos, "qos", 0, "QoS of publishes and of the subscription (0 or 1)")
	fl.IntVar(&l.Window, "window", 64, "unacknowledged QoS 1 publishes")
	fl.DurationVar(&l.Idle, "idle", 3*time.Second, "silence after which undelivered messages count as lost")
	return cmd
}

func newBenchIdleCmd(o *benchOptions) *cobra.Command {
	s := bench.Idle{}
	var sources int
	cmd := &cobra.Command{
		Use:   "idle",
		Short: "Open N connections with a keep alive and hold them; broker memory per connection (--pid) and loss",
		Long: "Open N MQTT connections with a keep alive, hold them idle, then check that each still\n" +
			"answers a PINGREQ. With --pid, the broker's VmRSS (/proc/PID/status) is read before the\n" +
			"first connection and after the hold; the growth divided by the live connections is the\n" +
			"memory per idle connection. Both ends need a file-descriptor limit above N (ulimit -n).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if s.Conns < 1 || sources < 0 || sources > 254 {
				return fmt.Errorf("--conns must be at least 1, --sources within 0..254")
			}
			s.Addr = o.addr
			s.Sources = nil
			for i := range sources {
				s.Sources = append(s.Sources, net.IPv4(127, 0, 0, byte(i+1)))
			}
			name := o.scenario(fmt.Sprintf("idle-%d", s.Conns))
			return runAll(o, cmd, s.Run, func(_ int, res bench.IdleResult) []bench.Metric { return res.Metrics(name) })
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&s.Conns, "conns", 10000, "connections to open")
	fl.DurationVar(&s.KeepAlive, "keepalive", 60*time.Second, "keep alive of the connections (pinged at half of it)")
	fl.DurationVar(&s.Hold, "hold", 5*time.Second, "how long to hold the connections before measuring")
	fl.IntVar(&sources, "sources", 0, "connect from 127.0.0.1 .. 127.0.0.N in turn (each has its own ephemeral ports); 0: let the system choose")
	fl.IntVar(&s.Parallel, "parallel", 64, "connections being opened at once")
	fl.IntVar(&s.PID, "pid", 0, "broker process whose VmRSS to read (0: do not measure memory)")
	return cmd
}

func newBenchReportCmd() *cobra.Command {
	var base string
	cmd := &cobra.Command{
		Use:   "report [FILE]",
		Short: "Print medians and ratios of kv lines (broker=NAME prefixed) as a Markdown table",
		Long: "Read lines of `ferry bench --output kv`, each prefixed with broker=NAME, from FILE or\n" +
			"standard input and print per scenario and metric the median of the lossless runs of every\n" +
			"broker and the ratio of the --base broker to each other one.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := cmd.InOrStdin()
			if len(args) == 1 {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			return bench.Report(cmd.OutOrStdout(), in, base)
		},
	}
	cmd.Flags().StringVar(&base, "base", "ferry", "broker whose ratio to every other one is shown")
	return cmd
}

func newBenchSoakCmd(o *benchOptions) *cobra.Command {
	s := bench.Soak{}
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Mixed QoS 0/1/2 traffic and persistent sessions reconnecting at random, for a long time; the broker's RSS, open files, goroutines and store size sampled",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if s.Duration <= 0 || s.Sessions < 1 || s.Rate < 1 || s.Every <= 0 {
				return fmt.Errorf("--duration, --sessions, --rate and --every must be positive")
			}
			if s.MetricsURL == "" {
				return fmt.Errorf("--metrics-url is required (Ferry: http://<http-addr>/metrics)")
			}
			s.Addr = o.addr
			s.Sample = func(smp bench.SoakSample) { fmt.Fprintln(cmd.ErrOrStderr(), smp) }
			res, err := s.Run(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&s.MetricsURL, "metrics-url", "", "the broker's Prometheus endpoint, e.g. http://127.0.0.1:8080/metrics")
	fl.StringVar(&s.DataDir, "data-dir", "", "the broker's data directory, whose size is sampled")
	fl.DurationVar(&s.Duration, "duration", 10*time.Minute, "how long to run")
	fl.IntVar(&s.Sessions, "sessions", 1000, "persistent sessions reconnecting at random")
	fl.IntVar(&s.Rate, "rate", 1500, "messages per second over all publishers, a third at each QoS")
	fl.DurationVar(&s.Every, "every", 30*time.Second, "sampling interval")
	return cmd
}
