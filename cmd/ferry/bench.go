package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-iot/ferry/internal/bench"
)

func newBenchCmd() *cobra.Command {
	f := bench.FanIn{}
	var runs int
	var qos uint8
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate MQTT load against a broker (Ferry or any other) and measure throughput",
	}
	fanin := &cobra.Command{
		Use:   "fanin",
		Short: "N publishers -> 1 wildcard subscriber; prints delivered msgs/s and loss per run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if qos > 1 {
				return fmt.Errorf("--qos %d: the fan-in scenario supports QoS 0 and 1", qos)
			}
			if f.Publishers < 1 || f.Messages < 1 || f.Payload < 0 || runs < 1 {
				return fmt.Errorf("--publishers, --messages and --runs must be at least 1, --payload at least 0")
			}
			f.QoS = qos
			for i := range runs {
				res, err := f.Run(cmd.Context())
				if err != nil {
					return fmt.Errorf("run %d: %w", i+1, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "run %d: %s\n", i+1, res)
			}
			return nil
		},
	}
	fl := fanin.Flags()
	fl.StringVar(&f.Addr, "addr", "127.0.0.1:1883", "broker address")
	fl.IntVar(&f.Publishers, "publishers", 8, "publishing clients")
	fl.IntVar(&f.Messages, "messages", 100000, "messages per publisher")
	fl.IntVar(&f.Payload, "payload", 64, "payload size, bytes")
	fl.Uint8Var(&qos, "qos", 0, "QoS of publishes and of the subscription (0 or 1)")
	fl.IntVar(&f.Window, "window", 64, "unacknowledged QoS 1 publishes per publisher")
	fl.DurationVar(&f.Idle, "idle", 3*time.Second, "silence after which undelivered messages count as lost")
	fl.IntVar(&runs, "runs", 1, "number of runs")
	cmd.AddCommand(fanin)
	return cmd
}
