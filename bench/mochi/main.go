// Command mochi runs mochi-mqtt (github.com/mochi-mqtt/server/v2) on one
// TCP listener for bench/run.sh: anonymous clients, no persistence, the
// queue limits raised as for Mosquitto so that the comparison is of
// throughput without loss. It is a separate module so that Ferry's module
// never depends on mochi-mqtt.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "TCP listen address")
	pending := flag.Int("pending", 1<<20, "outbound packets waiting per client (MaximumClientWritesPending; mochi drops beyond it)")
	inflight := flag.Int("inflight", 65535, "stored outbound QoS 1/2 messages per client (MaximumInflight, at most 65535)")
	receive := flag.Int("receive-maximum", 65535, "unacknowledged inbound QoS 1/2 messages per client (ReceiveMaximum)")
	flag.Parse()
	if *inflight < 1 || *inflight > 65535 || *receive < 1 || *receive > 65535 || *pending < 1 || *pending > 1<<30 {
		fmt.Fprintln(os.Stderr, "mochi: -inflight and -receive-maximum must be within 1..65535, -pending within 1..2^30")
		os.Exit(2)
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(*pending)
	caps.MaximumInflight = uint16(*inflight)
	caps.ReceiveMaximum = uint16(*receive)
	server := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		fatal(err)
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *addr})); err != nil {
		fatal(err)
	}
	if err := server.Serve(); err != nil {
		fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	if err := server.Close(); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mochi:", err)
	os.Exit(1)
}
