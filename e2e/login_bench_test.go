package e2e

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// BenchmarkLogin measures MQTT logins per second (connect, CONNACK,
// disconnect, one client after another) with sha-256 and bcrypt (cost 10)
// password hashes, with and without the login cache.
//
//	go test -run NONE -bench Login ./e2e
func BenchmarkLogin(b *testing.B) {
	for _, tc := range []struct {
		name, hash string
		cache      time.Duration
	}{
		{"sha-256", "sha-256", 0},
		{"bcrypt", "bcrypt", 0},
		{"bcrypt-cached", "bcrypt", 30 * time.Second},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := config.Default()
			cfg.MQTT.Addr, cfg.HTTP.Addr, cfg.MQTT.SysInterval = "127.0.0.1:0", "", 0
			cfg.AMQP.AppAddr = "127.0.0.1:0"
			cfg.AMQP.Addr = "127.0.0.1:0"
			cfg.DataDir = b.TempDir()
			cfg.Auth = true
			cfg.Login.CacheTTL = config.Duration(tc.cache)
			n := startNode(b, cfg)
			provisionHashed(b, n, "acme", "dev", "dev", "pw-123456", tc.hash, true)
			connect, _ := (&packet.Connect{ClientID: "bench", CleanStart: true, KeepAlive: 30,
				UsernameFlag: true, Username: "dev@acme", PasswordFlag: true, Password: []byte("pw-123456")}).Append(nil, packet.V311)
			addr := n.MQTTAddr().String()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				conn.Write(connect)
				h, err := packet.ReadHeader(bufio.NewReader(conn))
				if err != nil || h.Type != packet.TypeConnack {
					b.Fatalf("no CONNACK: %v", err)
				}
				conn.Write([]byte{0xE0, 0})
				conn.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
		})
	}
}
