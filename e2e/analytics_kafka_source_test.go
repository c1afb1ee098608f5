package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/northbound/kafkaapi"
)

// TestAnalyticsKafkaSource: with Hono's messaging on Kafka (kfake), a
// query FROM telemetry reads hono.telemetry.<tenant> through its own
// consumer group, and a query FROM kafka reads a topic kcat writes, with
// the record key as the device.
func TestAnalyticsKafkaSource(t *testing.T) {
	kcat := requirePeer(t, "kcat", "kcat")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	createTopics(t, kc, append(kafkaapi.Topics{}.All(tenant), "plant.temps")...)
	n := startFerry(t, func(c *config.Config) {
		c.Cluster.Kafka.Brokers = kc.ListenAddrs()
		c.Cluster.Kafka.StartTimeout = config.Duration(20 * time.Second)
	})
	host, port := hostPort(n)
	brokers := strings.Join(kc.ListenAddrs(), ",")
	applyQuery(t, n, "ktele", `sql: SELECT device_id, sum(v) AS s, count(*) AS n FROM telemetry GROUP BY device_id, COUNT(3)
outputs: [{mqtt: "analytics/ktele/{device_id}"}]
`)
	applyQuery(t, n, "kraw", `sql: SELECT device_id, max(v) AS max, count(*) AS n FROM kafka 'plant.temps' GROUP BY device_id, COUNT(2)
outputs: [{mqtt: "analytics/kraw/{device_id}"}]
`)
	s := startProc(t, sub, "-h", host, "-p", port, "-t", "analytics/#", "-v", "-W", "40")
	waitSubscriptions(t, n.Hub(), 1)
	telemetry := func(dev, payload string) {
		run(t, pub, "-h", host, "-p", port, "-q", "1", "-t", "telemetry/"+tenant+"/"+dev, "-m", payload)
	}
	raw := func(dev, payload string) {
		runIn(t, payload+"\n", kcat, "-b", brokers, "-P", "-t", "plant.temps", "-k", dev)
	}
	// The groups start at the end of their topics once they have joined:
	// probe until each query answers.
	waitFor(t, "the telemetry query's consumer group", func() bool {
		for range 3 {
			telemetry("probe", `{"v":0}`)
		}
		return strings.Contains(s.out.String(), "analytics/ktele/probe ")
	})
	waitFor(t, "the raw query's consumer group", func() bool {
		for range 2 {
			raw("probe", `{"v":0}`)
		}
		return strings.Contains(s.out.String(), "analytics/kraw/probe ")
	})
	for _, v := range []string{"1", "2", "4"} {
		telemetry("dev-1", `{"v":`+v+`}`)
	}
	raw("dev-9", `{"v":21.5}`)
	raw("dev-9", `{"v":19}`)
	waitFor(t, "the rows of dev-1 and dev-9", func() bool {
		out := s.out.String()
		return strings.Contains(out, "analytics/ktele/dev-1 ") && strings.Contains(out, "analytics/kraw/dev-9 ")
	})
	for _, line := range strings.Split(s.out.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "analytics/ktele/dev-1 "):
			if !strings.Contains(line, `"s":7`) || !strings.Contains(line, `"n":3`) {
				t.Errorf("telemetry row: %s", line)
			}
		case strings.HasPrefix(line, "analytics/kraw/dev-9 "):
			if !strings.Contains(line, `"max":21.5`) || !strings.Contains(line, `"device_id":"dev-9"`) {
				t.Errorf("raw row: %s", line)
			}
		}
	}
}
