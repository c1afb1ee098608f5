package e2e

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/internal/config"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestOperationsEndpoint checks /healthz, /readyz, /metrics after traffic,
// and that pprof is off unless asked for.
func TestOperationsEndpoint(t *testing.T) {
	n := startFerry(t)
	base := "http://" + n.HTTPAddr().String()
	if code, body := httpGet(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200", code)
	}
	if code, _ := httpGet(t, base+"/debug/pprof/"); code != 404 {
		t.Errorf("/debug/pprof/ = %d without --pprof, want 404", code)
	}

	addr := n.MQTTAddr().String()
	sub, got := pahoGo(t, addr, "metrics-sub")
	pub, _ := pahoGo(t, addr, "metrics-pub")
	subscribe(t, sub, 0, paho.SubscribeOptions{Topic: "m/#", QoS: 1})
	publish(t, pub, &paho.Publish{Topic: "m/1", QoS: 1, Payload: []byte("12345")})
	publish(t, pub, &paho.Publish{Topic: "m/2", QoS: 0, Payload: []byte("123")})
	publish(t, pub, &paho.Publish{Topic: "x/r", QoS: 1, Retain: true, Payload: []byte("")}) // a retained write (clear), no subscriber
	receive(t, got)
	receive(t, got)

	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`ferry_connections{protocol="mqtt",tenant="DEFAULT_TENANT"} 2`,
		`ferry_messages_total{direction="in",kind="publish",protocol="mqtt",qos="1"} 2`,
		`ferry_messages_total{direction="in",kind="publish",protocol="mqtt",qos="0"} 1`,
		`ferry_messages_total{direction="out",kind="publish",protocol="mqtt",qos="1"} 1`,
		`ferry_payload_bytes_total{direction="in",kind="publish",protocol="mqtt"} 8`,
		`ferry_hub_published_total 3`,
		`ferry_hub_dropped_total{reason="connection_queue_full"} 0`,
		`ferry_hub_subscriptions 1`,
		`ferry_store_write_seconds_bucket{op="retain"`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if runtime.GOOS == "linux" {
		// Both clients go idle: after mqtt.idle_park they wait parked.
		waitFor(t, "both connections parked", func() bool {
			_, metrics := httpGet(t, base+"/metrics")
			return strings.Contains(metrics, "ferry_mqtt_parked_connections 2\n")
		})
	}
}

func TestPprofWhenEnabled(t *testing.T) {
	n := startFerry(t, func(c *config.Config) { c.HTTP.Pprof = true })
	if code, body := httpGet(t, "http://"+n.HTTPAddr().String()+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ = %d", code)
	}
}
