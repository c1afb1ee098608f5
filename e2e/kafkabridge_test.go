package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/config"
)

// TestKafkaBridge runs one Ferry node on Kafka (kfake) and drives its
// AMQP-Kafka bridge with go-amqp on the northbound listener, kcat being
// the independent Kafka client: what an application produces on
// kafka/<topic> kcat reads with its key, what kcat produces the
// application receives with the record's annotations, and topics outside
// the application's reach are refused.
func TestKafkaBridge(t *testing.T) {
	kcat := requirePeer(t, "kcat", "kcat")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "plant.in", "plant.out", "hono.telemetry.acme", "hono.telemetry.other"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	broker := kc.ListenAddrs()[0]
	hash, err := bcrypt.GenerateFromPassword([]byte("plant-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.AdminPassword = "admin-pw"
		c.Store.Engine = "memory"
		c.Cluster.Kafka.Brokers = kc.ListenAddrs()
		c.Applications = []config.Application{{Name: "plant", PasswordHash: string(hash), Tenants: []string{"acme"}, KafkaTopics: []string{"plant.*"}}}
	})
	s := dialApp(t, n, goamqp.SASLTypePlain("plant", "plant-pw"))
	ctx := honoCtx(t)

	// AMQP -> Kafka: accepted once Kafka has it, so kcat finds it.
	snd, err := s.NewSender(ctx, "kafka/plant.out", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &goamqp.Message{Data: [][]byte{[]byte("hello from AMQP")}, Annotations: goamqp.Annotations{"x-opt-bridge.key": "line-1"}}
	if err := outcome(ctx, snd, m); err != nil {
		t.Fatalf("produce through the bridge: %v", err)
	}
	out := run(t, kcat, "-b", broker, "-C", "-t", "plant.out", "-o", "beginning", "-c", "1", "-e", "-f", "%k %s\n")
	if out != "line-1 hello from AMQP\n" {
		t.Errorf("kcat read %q, want the key and value produced over AMQP", out)
	}

	// Kafka -> AMQP: a group member gets what kcat produced.
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p := exec.CommandContext(kctx, kcat, "-b", broker, "-P", "-t", "plant.in", "-K", ":")
	p.Stdin = strings.NewReader("line-2:hello from kcat\n")
	if b, err := p.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, b)
	}
	r := receiver(t, s, "kafka/plant.in/group.id/dashboard", "", 10)
	got := receiveAMQP(t, r)
	if string(got.GetData()) != "hello from kcat" || got.Annotations["x-opt-bridge.key"] != "line-2" ||
		got.Annotations["x-opt-bridge.topic"] != "plant.in" || got.Annotations["x-opt-bridge.offset"] != int64(0) {
		t.Errorf("received %q with annotations %v", got.GetData(), got.Annotations)
	}

	// Its tenant's Hono topic is in reach; another tenant's is not, nor is
	// Ferry's own cluster topic.
	if _, err := s.NewSender(ctx, "kafka/hono.telemetry.acme", nil); err != nil {
		t.Errorf("the tenant's Hono topic: %v", err)
	}
	for _, addr := range []string{"kafka/hono.telemetry.other", "kafka/ferry.messages", "kafka/unlisted"} {
		// go-amqp reports a refused attach as the detach's *Error.
		_, err := s.NewSender(ctx, addr, nil)
		var e *goamqp.Error
		if !errors.As(err, &e) || e.Condition != goamqp.ErrCondUnauthorizedAccess {
			t.Errorf("%s: %v, want amqp:unauthorized-access", addr, err)
		}
	}
}
