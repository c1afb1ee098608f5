package e2e

import (
	"net"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/config"
)

// TestTLSListener drives MQTT over TLS with mosquitto clients: a verified
// server certificate, and a required client certificate.
func TestTLSListener(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	pki := newTestPKI(t)
	for _, requireCert := range []bool{false, true} {
		name := "server-auth"
		if requireCert {
			name = "client-cert-required"
		}
		t.Run(name, func(t *testing.T) {
			n := startFerry(t, func(c *config.Config) {
				c.MQTT.TLS = config.TLS{Addr: "127.0.0.1:0", CertFile: pki.ServerCert, KeyFile: pki.ServerKey,
					ClientCAFile: pki.CA, RequireClientCert: requireCert}
			})
			_, port, _ := net.SplitHostPort(n.TLSAddr().String())
			tlsArgs := []string{"-h", "127.0.0.1", "-p", port, "--cafile", pki.CA}
			if requireCert {
				tlsArgs = append(tlsArgs, "--cert", pki.ClientCert, "--key", pki.ClientKey)
			}
			s := startProc(t, sub, append(tlsArgs, "-t", "tls/#", "-C", "1", "-v", "-V", "mqttv5")...)
			waitSubscriptions(t, n.Hub(), 1)
			run(t, pub, append(tlsArgs, "-t", "tls/x", "-m", "secret", "-q", "1")...)
			if out := strings.TrimSpace(s.wait(t)); out != "tls/x secret" {
				t.Errorf("subscriber over TLS got %q", out)
			}
			if requireCert {
				// Without a client certificate the handshake fails.
				p := startProc(t, pub, "-h", "127.0.0.1", "-p", port, "--cafile", pki.CA, "-t", "tls/x", "-m", "anon")
				out := p.exit(t)
				if p.cmd.ProcessState.Success() {
					t.Errorf("publish without a client certificate succeeded: %s", out)
				}
			}
		})
	}
}

// TestWebSocketListener drives MQTT over WebSocket with Paho's websocket
// transport (Python) and a plain TCP publisher.
func TestWebSocketListener(t *testing.T) {
	py := requirePython(t, "paho.mqtt.client", "python3-paho-mqtt")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) { c.MQTT.WebSocket.Addr = "127.0.0.1:0" })
	host, wsPort, _ := net.SplitHostPort(n.WebSocketAddr().String())
	_, tcpPort := hostPort(n)
	for _, version := range []string{"311", "5"} {
		t.Run("v"+version, func(t *testing.T) {
			p := startProc(t, py, "testdata/paho_ws.py", host, wsPort, version)
			waitSubscriptions(t, n.Hub(), 1)
			run(t, pub, "-h", host, "-p", tcpPort, "-t", "ws/in", "-m", "from-tcp", "-q", "1")
			if out := strings.TrimSpace(p.wait(t)); out != "OK" {
				t.Errorf("paho over websocket:\n%s", out)
			}
			waitFor(t, "websocket client gone", func() bool { return n.Hub().Stats().Subscripts == 0 })
		})
	}
}
