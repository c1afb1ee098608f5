package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/store/pebblestore"
)

func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.AMQP.AppAddr = "127.0.0.1:0"
	cfg.AMQP.Addr = "127.0.0.1:0"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.MQTT.SysInterval = 0
	cfg.DataDir = t.TempDir()
	return cfg
}

// storeReleased fails the test unless the node's Pebble store can be
// opened again: Pebble locks its directory while a store is open.
func storeReleased(t *testing.T, cfg config.Config) {
	t.Helper()
	s, err := pebblestore.Open(filepath.Join(cfg.DataDir, "store"), nil)
	if err != nil {
		t.Fatalf("the store is still held: %v", err)
	}
	s.Close()
}

// TestShutdownPastDeadlineClosesStore: a shutdown whose context has ended
// still closes the store (and the hub before it), so a restart in the
// same process, or the next process, can open it.
func TestShutdownPastDeadlineClosesStore(t *testing.T) {
	cfg := testConfig(t)
	n, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// A client mid-handshake keeps the MQTT server busy past the deadline.
	c, err := net.Dial("tcp", n.MQTTAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.Shutdown(ctx) // an error is expected: the deadline passed
	storeReleased(t, cfg)
}

// TestStartFailureReleasesEverything: a start that fails late (its MQTT
// address is taken) closes what it opened.
func TestStartFailureReleasesEverything(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(t)
	cfg.MQTT.Addr = taken.Addr().String()
	cfg.AMQP.AppAddr = "127.0.0.1:0"
	cfg.AMQP.Addr = "127.0.0.1:0"
	if _, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("Start succeeded on a taken address")
	}
	storeReleased(t, cfg)
}
