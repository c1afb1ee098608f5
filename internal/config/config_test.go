package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.yaml")
	data := "data_dir: /tmp/x\nmqtt:\n  addr: 127.0.0.1:2883\n  connect_timeout: 3s\nlog:\n  level: debug\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/tmp/x" || cfg.MQTT.Addr != "127.0.0.1:2883" || cfg.Log.Level != "debug" ||
		time.Duration(cfg.MQTT.ConnectTimeout) != 3*time.Second || cfg.MQTT.MaxQueued != 1000 {
		t.Errorf("loaded %+v", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "mqtt:\n  adr: x\n", "adr"},
		{"bad duration", "mqtt:\n  connect_timeout: soon\n", "duration"},
		{"bad type", "mqtt:\n  max_queued: many\n", "mqtt.max_queued (line 2"},
		{"bad nested type", "log:\n  level: info\nhttp:\n  pprof: maybe\n", "http.pprof (line 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.yaml")
			os.WriteFile(path, []byte(tt.yaml), 0o600)
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing config file gave no error")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" means valid
	}{
		{"loopback v4", func(c *Config) { c.MQTT.Addr = "127.0.0.2:1883" }, ""},
		{"loopback v6", func(c *Config) { c.MQTT.Addr = "[::1]:1883" }, ""},
		{"localhost", func(c *Config) { c.MQTT.Addr = "localhost:1883" }, ""},
		{"all interfaces", func(c *Config) { c.MQTT.Addr = ":1883" }, ""},
		{"0.0.0.0 allowed", func(c *Config) { c.MQTT.Addr = "0.0.0.0:1883"; c.AllowAnonymous = true }, ""},
		{"0.0.0.0 with auth", func(c *Config) { c.MQTT.Addr = "0.0.0.0:1883"; c.Auth = true }, ""},
		{"no port", func(c *Config) { c.MQTT.Addr = "127.0.0.1" }, "--mqtt-addr"},
		{"bad port", func(c *Config) { c.MQTT.Addr = "127.0.0.1:http" }, "--mqtt-addr"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "--log-level"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"packet size", func(c *Config) { c.MQTT.MaxPacketSize = 10 }, "mqtt.max_packet_size"},
		{"receive maximum", func(c *Config) { c.MQTT.ReceiveMaximum = 0 }, "mqtt.receive_maximum"},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"store engine", func(c *Config) { c.Store.Engine = "bolt" }, "store.engine"},
		{"store durability", func(c *Config) { c.Store.Durability = "maybe" }, "store.durability"},
		{"tls without cert", func(c *Config) { c.MQTT.TLS.Addr = "127.0.0.1:8883" }, "--tls-cert"},
		{"tls bad address", func(c *Config) {
			c.MQTT.TLS = TLS{Addr: "0.0.0.0", CertFile: "c", KeyFile: "k"}
		}, "--mqtts-addr"},
		{"client cert without CA", func(c *Config) {
			c.MQTT.TLS = TLS{Addr: "127.0.0.1:8883", CertFile: "c", KeyFile: "k", RequireClientCert: true}
		}, "--tls-client-ca"},
		{"ws bad address", func(c *Config) { c.MQTT.WebSocket.Addr = "8083" }, "--ws-addr"},
		{"ws path", func(c *Config) { c.MQTT.WebSocket = WebSocket{Addr: "127.0.0.1:8083", Path: "mqtt"} }, "mqtt.websocket.path"},
		{"idle park", func(c *Config) { c.MQTT.IdlePark = -1 }, "mqtt.idle_park"},
		{"scale-out", func(c *Config) {
			c.Cluster.Kafka.Brokers = []string{"kafka:9092"}
			c.Registry.PostgresDSN = "postgres://ferry@db/ferry"
			c.AdminPassword = "pw"
		}, ""},
		{"one node with Kafka and the embedded registry", func(c *Config) { c.Cluster.Kafka.Brokers = []string{"kafka:9092"} }, ""},
		{"scale-out without admin password", func(c *Config) {
			c.Cluster.Kafka.Brokers = []string{"kafka:9092"}
			c.Registry.PostgresDSN = "postgres://ferry@db/ferry"
		}, "--admin-password"},
		{"kafka broker without port", func(c *Config) {
			c.Cluster.Kafka.Brokers = []string{"kafka"}
			c.Registry.PostgresDSN = "postgres://ferry@db/ferry"
		}, "--kafka-brokers"},
		{"one topic for both", func(c *Config) { c.Cluster.Kafka.RetainedTopic = c.Cluster.Kafka.Topic }, "cluster.kafka.retained_topic"},
		{"sasl mechanism", func(c *Config) { c.Cluster.Kafka.SASL = KafkaSASL{Mechanism: "GSSAPI", Username: "u", Password: "p"} }, "cluster.kafka.sasl.mechanism"},
		{"sasl without password", func(c *Config) { c.Cluster.Kafka.SASL = KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "u"} }, "--kafka-sasl-password"},
		{"sasl", func(c *Config) {
			c.Cluster.Kafka.SASL = KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}
		}, ""},
		{"ca file without tls", func(c *Config) { c.Cluster.Kafka.CAFile = "ca.pem" }, "cluster.kafka.tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			tt.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestExampleFileIsTheDefault(t *testing.T) {
	cfg, err := Load("../../docs/ferry.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ACL) == 0 {
		cfg.ACL = nil // "acl: []" in the file
	}
	if len(cfg.Applications) == 0 {
		cfg.Applications = nil // "applications: []"
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("docs/ferry.example.yaml differs from the defaults:\n got %+v\nwant %+v", cfg, Default())
	}
}

func TestPublicListener(t *testing.T) {
	cfg := Default()
	if l, ok := cfg.PublicListener(); ok {
		t.Errorf("default config has a public listener: %s", l)
	}
	cfg.MQTT.WebSocket.Addr = "0.0.0.0:8083"
	if l, ok := cfg.PublicListener(); !ok || !strings.Contains(l, "--ws-addr") {
		t.Errorf("PublicListener = %q, %v; want the WebSocket listener", l, ok)
	}
}

func TestYAMLHidesSecrets(t *testing.T) {
	for _, dsn := range []string{"postgres://ferry:s3cret@db:5432/ferry", "host=db user=ferry password=s3cret dbname=ferry"} {
		cfg := Default()
		cfg.AdminPassword = "s3cret"
		cfg.Cluster.Kafka.SASL.Password = "s3cret"
		cfg.Registry.PostgresDSN = dsn
		out, err := cfg.YAML()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "s3cret") {
			t.Errorf("--print-config shows a secret:\n%s", out)
		}
		if !strings.Contains(string(out), "ferry") {
			t.Errorf("--print-config lost the DSN's user:\n%s", out)
		}
	}
}

func TestValidateBridges(t *testing.T) {
	ok := Bridge{Name: "cloud", Address: "tcp://broker:1883", Topics: []BridgeTopic{{Pattern: "sensors/#", Direction: "out", QoS: 1}}}
	for _, tc := range []struct {
		name   string
		mutate func(b *Bridge)
		want   string // "" valid; else a part of the error
	}{
		{"valid", func(*Bridge) {}, ""},
		{"tls address with a CA", func(b *Bridge) { b.Address = "tls://broker:8883"; b.TLS.CAFile = "ca.pem" }, ""},
		{"no name", func(b *Bridge) { b.Name = "" }, "bridges[0].name"},
		{"name with a slash", func(b *Bridge) { b.Name = "a/b" }, "bridges[0].name"},
		{"bad scheme", func(b *Bridge) { b.Address = "http://broker" }, "bridges[0].address"},
		{"bad protocol", func(b *Bridge) { b.Protocol = "mqttv31" }, "bridges[0].protocol"},
		{"tls on tcp", func(b *Bridge) { b.TLS.CAFile = "ca.pem" }, "bridges[0].tls"},
		{"cert without key", func(b *Bridge) { b.Address = "tls://broker:8883"; b.TLS.CertFile = "c.pem" }, "bridges[0].tls"},
		{"no topics", func(b *Bridge) { b.Topics = nil }, "bridges[0].topics"},
		{"bad direction", func(b *Bridge) { b.Topics[0].Direction = "sideways" }, "bridges[0].topics[0].direction"},
		{"qos 3", func(b *Bridge) { b.Topics[0].QoS = 3 }, "bridges[0].topics[0].qos"},
		{"wildcard prefix", func(b *Bridge) { b.Topics[0].LocalPrefix = "a/+/" }, "bridges[0].topics[0].local_prefix"},
		{"empty pattern without prefixes", func(b *Bridge) { b.Topics[0].Pattern = "" }, "bridges[0].topics[0].pattern"},
		{"bad filter", func(b *Bridge) { b.Topics[0].Pattern = "a/#/b" }, "bridges[0].topics[0].pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := ok
			b.Topics = append([]BridgeTopic(nil), ok.Topics...)
			tc.mutate(&b)
			cfg := Default()
			cfg.Bridges = []Bridge{b}
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error = %v, want one naming %q", err, tc.want)
			}
		})
	}
	cfg := Default()
	cfg.Bridges = []Bridge{ok, ok}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "bridges[1].name") {
		t.Errorf("two bridges of one name: %v", err)
	}
}
