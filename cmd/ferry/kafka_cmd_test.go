package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

func runFerry(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestKafkaTopicsCreate: the four topics of a tenant are created, under a
// prefix; a second run finds them; missing flags are named.
func TestKafkaTopicsCreate(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := strings.Join(c.ListenAddrs(), ",")
	args := []string{"kafka", "topics", "create", "--tenant", "acme", "--kafka-brokers", brokers, "--partitions", "3", "--topic-prefix", "x."}
	out, err := runFerry(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"x.hono.telemetry.acme", "x.hono.event.acme", "x.hono.command.acme", "x.hono.command_response.acme"} {
		if !strings.Contains(out, topic+": created") {
			t.Errorf("first run: %s not created:\n%s", topic, out)
		}
	}
	if out, err = runFerry(t, args...); err != nil || strings.Count(out, ": exists") != 4 {
		t.Errorf("second run: %v\n%s", err, out)
	}
	for flag, args := range map[string][]string{
		"--tenant":        {"kafka", "topics", "create", "--kafka-brokers", brokers},
		"--kafka-brokers": {"kafka", "topics", "create", "--tenant", "acme"},
	} {
		if _, err := runFerry(t, args...); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("without %s: %v", flag, err)
		}
	}
	if _, err := runFerry(t, "kafka", "topics", "create", "--tenant", "acme", "--kafka-brokers", "nohost"); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("a broker without port: %v", err)
	}
}
