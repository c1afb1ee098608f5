package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/peertest"
)

// requireMQTTJS returns node after checking that MQTT.js is installed in
// testdata/mqttjs (.ci/run runs npm ci there).
func requireMQTTJS(t *testing.T) string {
	t.Helper()
	node := peertest.Program(t, "node", "nodejs")
	if _, err := os.Stat("testdata/mqttjs/node_modules/mqtt/package.json"); err != nil {
		peertest.Missing(t, "MQTT.js is not installed: run `npm ci` in e2e/testdata/mqttjs (needs npm)")
	}
	return node
}

// TestMQTTJS runs MQTT.js, the browser's client, over TCP and WebSocket,
// in 3.1.1 and 5, and with outbound topic aliases in MQTT 5.
func TestMQTTJS(t *testing.T) {
	node := requireMQTTJS(t)
	n := startFerry(t, func(c *config.Config) {
		c.MQTT.WebSocket.Addr = "127.0.0.1:0"
		c.MQTT.OutboundTopicAliases = true
	})
	tcp := "mqtt://" + n.MQTTAddr().String()
	ws := "ws://" + n.WebSocketAddr().String() + "/mqtt"
	for _, tt := range []struct{ name, url, version, aliasMax string }{
		{"tcp v311", tcp, "4", "0"},
		{"tcp v5", tcp, "5", "0"},
		{"tcp v5 topic aliases", tcp, "5", "2"},
		{"websocket v311", ws, "4", "0"},
		{"websocket v5 topic aliases", ws, "5", "2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := run(t, node, "testdata/mqttjs/client.js", tt.url, tt.version, tt.aliasMax)
			if strings.TrimSpace(out) != "OK" {
				t.Errorf("MQTT.js:\n%s", out)
			}
		})
	}
}
