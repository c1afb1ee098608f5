// Package config is Ferry's configuration: the schema, its defaults, loading
// from a YAML file, FERRY_* environment variables and command-line flags (in
// that order of increasing precedence), and validation.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-iot/ferry/mqtt/topic"
)

// DefaultTenant is the tenant of connections when authentication is off.
const DefaultTenant = "DEFAULT_TENANT"

// Config is the whole configuration of a Ferry process. Field docs give the
// YAML key, the default and the unit.
type Config struct {
	// DataDir (data_dir) holds all state of the embedded mode. Default ./ferry-data.
	DataDir string `yaml:"data_dir"`
	// AllowAnonymous (allow_anonymous) lets clients connect without
	// credentials on non-loopback addresses. Default false; loopback
	// listeners accept anonymous clients while no authentication is set up.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// Auth (auth, --auth) checks clients that log in as auth-id@tenant
	// against the device registry and refuses anonymous clients unless
	// allow_anonymous is set. Default false on loopback listeners; a
	// listener on another address turns it on when the registry holds
	// tenants (without any, and without allow_anonymous, Ferry refuses to
	// start: nothing could log in).
	Auth bool `yaml:"auth"`
	// Login protects password checks from floods.
	Login Login `yaml:"login"`
	// ACL (acl) lists access rules, tried in order (see ACLRule). A tenant
	// with rules (here, or in its registry entry under ext.acl) may only do
	// what a rule allows; a tenant without any may do everything.
	ACL []ACLRule `yaml:"acl"`
	// AdminPassword (admin_password, --admin-password, FERRY_ADMIN_PASSWORD)
	// protects the device registry API (HTTP Basic, user admin). Empty: one
	// is generated on first start into data_dir/admin-password.
	AdminPassword string `yaml:"admin_password"`
	Log           Log    `yaml:"log"`
	MQTT          MQTT   `yaml:"mqtt"`
	AMQP          AMQP   `yaml:"amqp"`
	CoAP          CoAP   `yaml:"coap"`
	// Hono configures Hono's device and application APIs.
	Hono Hono `yaml:"hono"`
	// Applications (applications[]) are the users applications log in
	// as on the northbound AMQP listener (SASL PLAIN), besides admin
	// (with admin_password, for every tenant).
	Applications []Application `yaml:"applications"`
	HTTP         HTTP          `yaml:"http"`
	Store        Store         `yaml:"store"`
	// Registry says where the device registry lives.
	Registry Registry `yaml:"registry"`
	// Cluster turns on and configures the scale-out mode.
	Cluster Cluster `yaml:"cluster"`
	// ShutdownTimeout (shutdown_timeout) bounds a clean shutdown. Default 5s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Bridges (bridges[]) connect Ferry to other MQTT brokers, as
	// Mosquitto's bridges do (docs/bridges.md). Default none.
	Bridges []Bridge `yaml:"bridges"`
	// Analytics configures the built-in streaming analytics.
	Analytics Analytics `yaml:"analytics"`
	// Gateway configures `ferry gateway` (docs/gateway.md), which serves
	// MQTT clients (on mqtt.addr, with mqtt's limits) on an external AMQP
	// 1.0 network instead of running the hub.
	Gateway Gateway `yaml:"gateway"`
}

// Gateway configures the MQTT gateway onto an AMQP 1.0 network.
type Gateway struct {
	// AMQPNetwork (gateway.amqp_network, --amqp-network) is the network:
	// amqp://[user:password@]host:port or amqps://...
	AMQPNetwork string `yaml:"amqp_network"`
	// Addresses (gateway.addresses, --amqp-network-addresses) maps topics
	// to addresses: mqtt (verbatim; EnMasse, Ferry) or rabbitmq
	// (/topic/a.b). Default mqtt.
	Addresses string `yaml:"addresses"`
	// CAFile (gateway.ca_file, --amqp-network-ca) verifies an amqps://
	// network's certificate; empty: the system's roots.
	CAFile string `yaml:"ca_file"`
	// ForwardCredentials (gateway.forward_credentials,
	// --forward-credentials) logs each MQTT client in to the network with
	// its own user name and password when amqp_network names no user.
	ForwardCredentials bool `yaml:"forward_credentials"`
	// Window (gateway.window) bounds the messages from the network on
	// their way to one client, unacknowledged. Default 100.
	Window int `yaml:"window"`
	// HTTPAddr (gateway.http_addr, --http-addr) serves /metrics and
	// /healthz; empty: off.
	HTTPAddr string `yaml:"http_addr"`
}

// Bridge is one connection to a remote broker (bridges[]).
type Bridge struct {
	// Name identifies the bridge in logs, metrics and the data directory
	// (data_dir/bridges/<name>). Required, unique.
	Name string `yaml:"name"`
	// Address is the remote broker: tcp://host:port or tls://host:port.
	Address string `yaml:"address"`
	// ClientID is the bridge's client identifier at the remote broker.
	// Default ferry-bridge-<name>.
	ClientID string    `yaml:"client_id"`
	Username string    `yaml:"username"`
	Password string    `yaml:"password"`
	TLS      BridgeTLS `yaml:"tls"`
	// CleanStart discards the remote session at the bridge's first
	// connection. Default false: the remote keeps the bridge's
	// subscriptions and queued messages while Ferry is away.
	CleanStart bool `yaml:"clean_start"`
	// KeepAlive is the MQTT keep alive towards the remote. Default 60s.
	KeepAlive Duration `yaml:"keep_alive"`
	// Protocol is mqttv311 or mqttv5. Default mqttv5.
	Protocol string `yaml:"protocol"`
	// Tenant is the local tenant the bridge publishes to and subscribes
	// in. Default DEFAULT_TENANT.
	Tenant string `yaml:"tenant"`
	// Topics are the forwarding rules, as Mosquitto's topic lines.
	Topics []BridgeTopic `yaml:"topics"`
}

// BridgeTLS configures TLS towards the remote broker (tls:// addresses).
type BridgeTLS struct {
	// CAFile holds PEM CAs of the remote's certificate (empty: the system's).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, if the remote asks for one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify accepts any certificate of the remote: tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// BridgeTopic is one forwarding rule, Mosquitto's
// "topic pattern direction qos local-prefix remote-prefix": the local topic
// is LocalPrefix+Pattern, the remote one RemotePrefix+Pattern.
type BridgeTopic struct {
	// Pattern is a topic filter; empty means the prefixes are the topics.
	Pattern string `yaml:"pattern"`
	// Direction is in (remote to local), out (local to remote) or both.
	// Default out.
	Direction string `yaml:"direction"`
	// QoS is the most a forwarded message keeps: 0, 1 or 2. Default 0.
	QoS          byte   `yaml:"qos"`
	LocalPrefix  string `yaml:"local_prefix"`
	RemotePrefix string `yaml:"remote_prefix"`
}

// Bridge protocols (bridges[].protocol).
const (
	BridgeMQTTv311 = "mqttv311"
	BridgeMQTTv5   = "mqttv5"
)

// WithDefaults returns b with the defaults of unset keys filled in.
func (b Bridge) WithDefaults() Bridge {
	if b.ClientID == "" {
		b.ClientID = "ferry-bridge-" + b.Name
	}
	if b.KeepAlive == 0 {
		b.KeepAlive = Duration(60 * time.Second)
	}
	if b.Protocol == "" {
		b.Protocol = BridgeMQTTv5
	}
	if b.Tenant == "" {
		b.Tenant = DefaultTenant
	}
	b.Topics = append([]BridgeTopic(nil), b.Topics...)
	for i := range b.Topics {
		if b.Topics[i].Direction == "" {
			b.Topics[i].Direction = "out"
		}
	}
	return b
}

// AMQP configures the AMQP 1.0 listeners.
type AMQP struct {
	// Addr (amqp.addr, --amqp-addr) is Hono's AMQP device adapter:
	// devices send telemetry and events and receive commands. Empty
	// disables it. Default 127.0.0.1:5672.
	Addr string `yaml:"addr"`
	// TLSAddr (amqp.tls_addr, --amqps-addr) is the AMQP device adapter
	// over TLS, with the certificate and key of mqtt.tls (--tls-cert,
	// --tls-key); devices with a certificate log in with SASL EXTERNAL.
	// Empty disables it. Default empty (the conventional port is 5671).
	TLSAddr string `yaml:"tls_addr"`
	// AppAddr (amqp.app_addr, --amqp-app-addr) is the northbound listener
	// of applications: Hono's telemetry/, event/, command/ and
	// command_response/ addresses. Empty disables it. Default
	// 127.0.0.1:15672.
	AppAddr string `yaml:"app_addr"`
	// AppTLSAddr (amqp.app_tls_addr, --amqps-app-addr) is the northbound
	// listener over TLS, with the certificate and key of mqtt.tls
	// (--tls-cert, --tls-key). Empty disables it. Default empty (Hono's
	// port is 15671).
	AppTLSAddr string `yaml:"app_tls_addr"`
	// MaxConnections (amqp.max_connections) bounds the application
	// connections open at once; one more is closed after its open with
	// amqp:resource-limit-exceeded. Default 1000.
	MaxConnections int `yaml:"max_connections"`
}

// CoAP configures Hono's CoAP device adapter.
type CoAP struct {
	// Addr (coap.addr, --coap-addr) is the UDP listen address; empty
	// disables it. Devices there are unauthenticated (DTLS is not
	// implemented yet), so it needs authentication off or
	// allow_anonymous. Default empty (the conventional port is 5683).
	Addr string `yaml:"addr"`
	// DTLSAddr (coap.dtls_addr, --coaps-addr) is CoAP over DTLS with
	// pre-shared keys: the PSK identity is auth-id@tenant, the key that
	// of the device's psk credential. Empty disables it. Default empty
	// (the conventional port is 5684).
	DTLSAddr string `yaml:"dtls_addr"`
}

// Hono configures Hono's APIs on the MQTT listeners and the northbound
// AMQP listener.
type Hono struct {
	// Disabled (hono.disabled) makes telemetry, event and command topics
	// plain MQTT topics. Default false.
	Disabled bool `yaml:"disabled"`
	// EventRetention (hono.event_retention) is how long an event is kept
	// at most (hono-ttl may shorten it), and how long an event group that
	// no application receives for keeps its events. Default 24h.
	EventRetention Duration `yaml:"event_retention"`
	// MaxPayloadSize (hono.max_payload_size) bounds the payload of a
	// telemetry message or event, bytes (Hono's maxPayloadSize); larger
	// ones are refused. Default 2048.
	MaxPayloadSize int `yaml:"max_payload_size"`
	// CommandAckTimeout (hono.command_ack_timeout) is how long a device
	// has to acknowledge a QoS 1 command before the application gets
	// released (Hono's sendMessageToDeviceTimeout). Default 1s.
	CommandAckTimeout Duration `yaml:"command_ack_timeout"`
	// ConnectionEvents (hono.connection_events): events sends Hono
	// connection events of authenticated devices as events; none does
	// not. Default none.
	ConnectionEvents string `yaml:"connection_events"`
	// Kafka (hono.kafka) is Hono's Kafka messaging, on whenever
	// cluster.kafka.brokers (--kafka-brokers) is set.
	Kafka HonoKafka `yaml:"kafka"`
}

// HonoKafka configures Hono's Kafka topics.
type HonoKafka struct {
	// TopicPrefix (hono.kafka.topic_prefix, --kafka-topic-prefix) starts
	// every Hono topic name, for Kafka clusters shared with others.
	// Default empty (hono.telemetry.<tenant> ...).
	TopicPrefix string `yaml:"topic_prefix"`
	// CommandGroup (hono.kafka.command_group) is the consumer group of the
	// hono.command.<tenant> topics, shared by the nodes. Default
	// ferry-command-router.
	CommandGroup string `yaml:"command_group"`
	// ConsumeCommands (hono.kafka.consume_commands) makes the node a
	// member of CommandGroup; false leaves the command topics to other
	// nodes (commands still reach this node's devices through them).
	// Default true.
	ConsumeCommands bool `yaml:"consume_commands"`
}

// Application is one application user (applications[]).
type Application struct {
	// Name is the SASL PLAIN user name.
	Name string `yaml:"name"`
	// PasswordHash is a bcrypt hash of the password (ferry app
	// hash-password prints one).
	PasswordHash string `yaml:"password_hash"`
	// Tenants the application may use; "*" for every tenant.
	Tenants []string `yaml:"tenants"`
	// KafkaTopics (applications[].kafka_topics) are the Kafka topics the
	// application may reach through the AMQP-Kafka bridge besides the Hono
	// topics of its tenants: exact names, or a prefix ending in '*'.
	// Applications of every tenant ("*") reach every topic. Default none.
	KafkaTopics []string `yaml:"kafka_topics"`
}

// Log configures logging.
type Log struct {
	// Level (log.level): debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format (log.format): text or json. Default text.
	Format string `yaml:"format"`
}

// ACLRule is one access rule (acl[]).
type ACLRule struct {
	// Tenant (required) the rule applies to; "*" for all.
	Tenant string `yaml:"tenant"`
	// Device and User (auth-id) restrict the rule; empty for all.
	Device string `yaml:"device"`
	User   string `yaml:"user"`
	// Access: publish, subscribe or all (default).
	Access string `yaml:"access"`
	// Topic filter with %c (client id), %u (auth-id), %d (device id) and
	// %t (tenant) replaced per client.
	Topic string `yaml:"topic"`
	// Deny refuses instead of allowing.
	Deny bool `yaml:"deny"`
}

// Login bounds the cost of device logins.
type Login struct {
	// Concurrency (login.concurrency) is the number of password checks
	// running at once (bcrypt costs tens of ms of CPU). 0: the CPU count.
	Concurrency int `yaml:"concurrency"`
	// CacheTTL (login.cache_ttl) keeps successful logins for reconnects;
	// a disabled device or changed password takes effect after it. 0
	// disables the cache. Default 30s.
	CacheTTL Duration `yaml:"cache_ttl"`
	// FailureBurst and FailureInterval (login.failure_burst,
	// login.failure_interval) limit failed logins per remote address:
	// that many at once, then one per interval. Default 10 and 1s; burst 0
	// disables the limit.
	FailureBurst    int      `yaml:"failure_burst"`
	FailureInterval Duration `yaml:"failure_interval"`
}

// Store configures where broker state lives.
type Store struct {
	// Engine (store.engine): pebble keeps sessions, queues, retained
	// messages and wills in data_dir/store and survives restarts and
	// crashes; memory keeps nothing across restarts. Default pebble.
	Engine string `yaml:"engine"`
	// Durability (store.durability): sync fsyncs every acknowledged write
	// (concurrent writes share one fsync); batch fsyncs at most every
	// sync_interval (a machine crash loses that window); none leaves it to
	// the operating system. Default sync.
	Durability string `yaml:"durability"`
	// SyncInterval (store.sync_interval) is the fsync period of batch
	// durability. Default 10ms.
	SyncInterval Duration `yaml:"sync_interval"`
}

// Registry configures the device registry's storage.
type Registry struct {
	// PostgresDSN (registry.postgres_dsn, --postgres-dsn) is the PostgreSQL
	// connection string (postgres://user:pass@host:5432/db) of a registry
	// shared by the nodes of a scale-out cluster. Empty keeps the registry
	// in data_dir with the rest of the embedded state. Default empty.
	PostgresDSN string `yaml:"postgres_dsn"`
}

// Cluster configures the scale-out mode: several identical nodes behind a
// TCP load balancer, messages between them through Kafka.
type Cluster struct {
	// NodeID (cluster.node_id, --node-id) names this node in the records
	// it produces, so that it skips its own. It must be unique in the
	// cluster. Default: the host name (a pod's name in Kubernetes) and a
	// random suffix.
	NodeID string `yaml:"node_id"`
	// Kafka is the message stream shared by the nodes (cluster.kafka).
	Kafka Kafka `yaml:"kafka"`
}

// Kafka configures the cluster's Kafka topics.
type Kafka struct {
	// Brokers (cluster.kafka.brokers, --kafka-brokers, comma-separated) are
	// the bootstrap servers; setting them turns on the scale-out mode.
	// Default none.
	Brokers []string `yaml:"brokers"`
	// Topic (cluster.kafka.topic) carries every published message.
	// Default ferry.messages.
	Topic string `yaml:"topic"`
	// RetainedTopic (cluster.kafka.retained_topic) is the compacted topic
	// of retained messages. Default ferry.retained.
	RetainedTopic string `yaml:"retained_topic"`
	// TLS (cluster.kafka.tls) connects to the brokers over TLS. Default
	// false.
	TLS bool `yaml:"tls"`
	// CAFile (cluster.kafka.ca_file) is a PEM bundle of the CAs that sign
	// the brokers' certificates (Strimzi: ca.crt of the
	// <cluster>-cluster-ca-cert Secret); empty: the system's CAs.
	CAFile string `yaml:"ca_file"`
	// SASL (cluster.kafka.sasl) logs the node in to the brokers.
	SASL KafkaSASL `yaml:"sasl"`
	// StartTimeout (cluster.kafka.start_timeout) bounds how long a starting
	// node waits for Kafka to answer and for the retained messages; then
	// it gives up, saying why. Default 1m.
	StartTimeout Duration `yaml:"start_timeout"`
}

// KafkaSASL configures the node's SASL login to Kafka.
type KafkaSASL struct {
	// Mechanism (cluster.kafka.sasl.mechanism): PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512; empty: no SASL. Default empty.
	Mechanism string `yaml:"mechanism"`
	// Username (cluster.kafka.sasl.username) and Password
	// (cluster.kafka.sasl.password, --kafka-sasl-password,
	// FERRY_KAFKA_SASL_PASSWORD) are the credentials (Strimzi: a
	// KafkaUser's name and the password key of its Secret).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// ScaleOut reports whether the configuration runs a node of a scale-out
// cluster.
func (c *Config) ScaleOut() bool { return len(c.Cluster.Kafka.Brokers) > 0 }

// HTTP configures the operations endpoint: /metrics, /healthz, /readyz
// and, when enabled, /debug/pprof/.
type HTTP struct {
	// Addr (http.addr) is the listen address; empty disables the endpoint.
	// Default 127.0.0.1:8080.
	Addr string `yaml:"addr"`
	// TLSAddr (http.tls_addr, --https-addr) serves the same over TLS, with
	// the certificate and key of mqtt.tls (--tls-cert, --tls-key); devices
	// of Hono's HTTP adapter may log in there with client certificates
	// when --auth is on. Default empty (Hono's secure port is 8443).
	TLSAddr string `yaml:"tls_addr"`
	// Pprof (http.pprof) serves Go's profiler under /debug/pprof/. Default false.
	Pprof bool `yaml:"pprof"`
	// Console (http.console, --console) serves the web console under
	// /console/ (docs/console.md). Default true.
	Console bool `yaml:"console"`
}

// MQTT configures the MQTT listener and the limits of its connections.
type MQTT struct {
	// Addr (mqtt.addr) is the TCP listen address. Default 127.0.0.1:1883.
	Addr string `yaml:"addr"`
	// MaxPacketSize (mqtt.max_packet_size) limits inbound packets, bytes.
	// Default 1048576 (1 MiB); at most 268435460.
	MaxPacketSize uint32 `yaml:"max_packet_size"`
	// ReceiveMaximum (mqtt.receive_maximum) is the number of unacknowledged
	// inbound QoS 1/2 messages a client may have. Default 64.
	ReceiveMaximum uint16 `yaml:"receive_maximum"`
	// MaxInflight (mqtt.max_inflight) is the number of unacknowledged
	// outbound QoS 1/2 messages per connection. Default 64.
	MaxInflight uint16 `yaml:"max_inflight"`
	// MaxQueued (mqtt.max_queued) bounds the messages waiting to be written
	// to one connection. Default 1000.
	MaxQueued int `yaml:"max_queued"`
	// MaxQueuedOffline (mqtt.max_queued_offline) bounds the messages kept
	// for a disconnected persistent session. Default 1000.
	MaxQueuedOffline int `yaml:"max_queued_offline"`
	// MaxQueuedOfflineBytes (mqtt.max_queued_offline_bytes) bounds them in
	// bytes. Default 67108864 (64 MiB).
	MaxQueuedOfflineBytes int `yaml:"max_queued_offline_bytes"`
	// MaxStoredMessages (mqtt.max_stored_messages) bounds the messages a
	// persistent session keeps in the store once its in-memory queue
	// (max_queued_offline) is full: only past it are QoS 1/2 messages to
	// the session dropped (the publisher is told: MQTT 5 PUBACK 0x97).
	// Default 1000000.
	MaxStoredMessages int `yaml:"max_stored_messages"`
	// MaxStoredBytes (mqtt.max_stored_bytes) bounds the stored queues of
	// all sessions together, in bytes. Default 4294967296 (4 GiB).
	MaxStoredBytes int64 `yaml:"max_stored_bytes"`
	// MaxSubscriptions (mqtt.max_subscriptions) bounds the subscriptions
	// of one session; a SUBSCRIBE beyond it is refused (MQTT 5: 0x97,
	// 3.1.1: 0x80). Default 1000.
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// MaxRetained (mqtt.max_retained) bounds the retained topics of one
	// tenant; a retained message for a new topic beyond it is delivered
	// but not kept (MQTT 5: PUBACK 0x97). Default 100000.
	MaxRetained int `yaml:"max_retained"`
	// QueueQoS0Offline (mqtt.queue_qos0_offline) queues QoS 0 messages for
	// disconnected persistent sessions too. Default false.
	QueueQoS0Offline bool `yaml:"queue_qos0_offline"`
	// MaxKeepAlive (mqtt.max_keep_alive) caps the keep alive a client may
	// ask for, seconds; 0 means no cap. Default 0.
	MaxKeepAlive uint16 `yaml:"max_keep_alive"`
	// ConnectTimeout (mqtt.connect_timeout) is how long a new connection has
	// to send CONNECT. Default 10s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// DisconnectLinger (mqtt.disconnect_linger) is how long a connection
	// Ferry ends (DISCONNECT with a reason, a refusing CONNACK) keeps
	// reading and discarding the client's bytes after shutting its write
	// side, so that the client reads the reason instead of a reset. 0s
	// closes at once. Default 2s.
	DisconnectLinger Duration `yaml:"disconnect_linger"`
	// IdlePark (mqtt.idle_park) is how long a connection may go without
	// inbound bytes before it gives up its reader goroutine and waits in the
	// server's poller (Linux, plain TCP): idle connections then cost no
	// goroutine. 0s never parks. Default 100ms.
	IdlePark Duration `yaml:"idle_park"`
	// TopicAliasMaximum (mqtt.topic_alias_maximum) is the number of inbound
	// topic aliases an MQTT 5 client may use. Default 10.
	TopicAliasMaximum uint16 `yaml:"topic_alias_maximum"`
	// OutboundTopicAliases (mqtt.outbound_topic_aliases) sends topic aliases
	// to MQTT 5 clients that accept them. Default false (some clients
	// announce aliases they cannot resolve).
	OutboundTopicAliases bool `yaml:"outbound_topic_aliases"`
	// SessionExpiry311 (mqtt.session_expiry_311) is how long a 3.1.1 session
	// with clean session 0 outlives its connection; 0 means forever, as in
	// MQTT 3.1.1. MQTT 5 clients choose their own. Default 0.
	SessionExpiry311 Duration `yaml:"session_expiry_311"`
	// SysInterval (mqtt.sys_interval) is how often $SYS/broker/ topics are
	// refreshed; 0 turns them off. Default 10s.
	SysInterval Duration `yaml:"sys_interval"`
	// TLS is MQTT over TLS (mqtt.tls).
	TLS TLS `yaml:"tls"`
	// WebSocket is MQTT over WebSocket (mqtt.websocket).
	WebSocket WebSocket `yaml:"websocket"`
}

// TLS configures a TLS listener.
type TLS struct {
	// Addr (mqtt.tls.addr, --mqtts-addr) is the listen address; empty
	// disables TLS. Default empty (the conventional port is 8883).
	Addr string `yaml:"addr"`
	// CertFile and KeyFile (cert_file, key_file; --tls-cert, --tls-key) are
	// the PEM server certificate chain and private key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile (client_ca_file, --tls-client-ca) is a PEM bundle of CAs
	// whose client certificates are verified when presented.
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert (require_client_cert, --tls-require-client-cert)
	// refuses clients without a valid certificate. Default false.
	RequireClientCert bool `yaml:"require_client_cert"`
}

// WebSocket configures MQTT over WebSocket.
type WebSocket struct {
	// Addr (mqtt.websocket.addr, --ws-addr) is the HTTP listen address;
	// empty disables WebSocket. Default empty.
	Addr string `yaml:"addr"`
	// Path (mqtt.websocket.path) is the upgrade path. Default /mqtt.
	Path string `yaml:"path"`
}

// Duration is a time.Duration written as "5s", "250ms" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 5s or 250ms", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		DataDir:         "./ferry-data",
		Log:             Log{Level: "info", Format: "text"},
		ShutdownTimeout: Duration(5 * time.Second),
		HTTP:            HTTP{Addr: "127.0.0.1:8080", Console: true},
		AMQP:            AMQP{Addr: "127.0.0.1:5672", AppAddr: "127.0.0.1:15672", MaxConnections: 1000},
		Hono: Hono{EventRetention: Duration(24 * time.Hour), MaxPayloadSize: 2048,
			CommandAckTimeout: Duration(time.Second), ConnectionEvents: "none",
			Kafka: HonoKafka{CommandGroup: "ferry-command-router", ConsumeCommands: true}},
		Login:   Login{CacheTTL: Duration(30 * time.Second), FailureBurst: 10, FailureInterval: Duration(time.Second)},
		Store:   Store{Engine: "pebble", Durability: "sync", SyncInterval: Duration(10 * time.Millisecond)},
		Bridges: []Bridge{},
		Cluster: Cluster{Kafka: Kafka{Brokers: []string{}, Topic: "ferry.messages", RetainedTopic: "ferry.retained", StartTimeout: Duration(time.Minute)}},
		MQTT: MQTT{
			Addr:                  "127.0.0.1:1883",
			MaxPacketSize:         1 << 20,
			ReceiveMaximum:        64,
			MaxInflight:           64,
			MaxQueued:             1000,
			MaxQueuedOffline:      1000,
			MaxQueuedOfflineBytes: 64 << 20,
			MaxStoredMessages:     1_000_000,
			MaxStoredBytes:        4 << 30,
			MaxSubscriptions:      1000,
			MaxRetained:           100_000,
			ConnectTimeout:        Duration(10 * time.Second),
			IdlePark:              Duration(100 * time.Millisecond),
			DisconnectLinger:      Duration(2 * time.Second),
			TopicAliasMaximum:     10,
			WebSocket:             WebSocket{Path: "/mqtt"},
			SysInterval:           Duration(10 * time.Second),
		},
		Analytics: Analytics{CheckpointInterval: Duration(10 * time.Second), KafkaBrokers: []string{}, Queries: []yaml.Node{}},
		Gateway:   Gateway{Addresses: "mqtt", Window: 100},
	}
}

// Load returns the defaults overlaid with the YAML file at path ("" for
// none). Unknown keys are errors, so a typo never goes unnoticed.
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return cfg, fmt.Errorf("config file %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config file %s: %w", path, nameKeys(data, err))
	}
	return cfg, nil
}

// nameKeys rewrites yaml's "line N: ..." errors to name the dotted key at
// that line, so the user reads "mqtt.max_queued (line 3): ...".
func nameKeys(data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	keys := map[int]string{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for _, c := range n.Content {
			if n.Kind != yaml.MappingNode {
				walk(c, prefix)
			}
		}
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + key
			}
			keys[k.Line] = key
			walk(v, key)
		}
	}
	walk(&root, "")
	msgs := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		msgs[i] = e
		var line int
		if _, serr := fmt.Sscanf(e, "line %d:", &line); serr == nil {
			if key, ok := keys[line]; ok {
				msgs[i] = key + " (" + e + ")"
			}
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Validate checks every value and names the key (and flag) of the first
// that is wrong.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir (--data-dir) must not be empty")
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		return fmt.Errorf("log.level (--log-level): %w", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("log.format (--log-format): %q is not text or json", c.Log.Format)
	}
	for _, l := range c.listeners() {
		if l.addr == "" && l.key != "mqtt.addr" {
			continue
		}
		if _, err := IsLoopback(l.addr); err != nil {
			return fmt.Errorf("%s (%s): %w", l.key, l.flag, err)
		}
	}
	if ce := c.Hono.ConnectionEvents; ce != "" && ce != "none" && ce != "events" {
		return fmt.Errorf("hono.connection_events: %q is not none or events", ce)
	}
	if c.AMQP.MaxConnections < 1 {
		return errors.New("amqp.max_connections must be at least 1")
	}
	if c.Hono.MaxPayloadSize < 0 {
		return errors.New("hono.max_payload_size must not be negative")
	}
	for i, a := range c.Applications {
		switch {
		case a.Name == "" || a.Name == "admin":
			return fmt.Errorf("applications[%d]: name must be set and not admin", i)
		case !strings.HasPrefix(a.PasswordHash, "$2"):
			return fmt.Errorf("applications[%d] (%s): password_hash must be a bcrypt hash (ferry app hash-password prints one)", i, a.Name)
		case len(a.Tenants) == 0:
			return fmt.Errorf("applications[%d] (%s): tenants must list the tenants it may use, or \"*\"", i, a.Name)
		}
		for _, t := range a.KafkaTopics {
			if t == "" {
				return fmt.Errorf("applications[%d] (%s): kafka_topics must hold topic names or prefixes ending in *, not an empty name", i, a.Name)
			}
		}
	}
	if t := c.MQTT.TLS; c.HTTP.TLSAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return errors.New("http.tls_addr (--https-addr) needs mqtt.tls.cert_file (--tls-cert) and mqtt.tls.key_file (--tls-key)")
	}
	if t := c.MQTT.TLS; c.AMQP.AppTLSAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return errors.New("amqp.app_tls_addr (--amqps-app-addr) needs mqtt.tls.cert_file (--tls-cert) and mqtt.tls.key_file (--tls-key)")
	}
	if t := c.MQTT.TLS; c.AMQP.TLSAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return errors.New("amqp.tls_addr (--amqps-addr) needs mqtt.tls.cert_file (--tls-cert) and mqtt.tls.key_file (--tls-key)")
	}
	if t := c.MQTT.TLS; t.Addr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return errors.New("mqtt.tls.addr (--mqtts-addr) needs mqtt.tls.cert_file (--tls-cert) and mqtt.tls.key_file (--tls-key)")
	}
	if t := c.MQTT.TLS; t.RequireClientCert && t.ClientCAFile == "" {
		return errors.New("mqtt.tls.require_client_cert (--tls-require-client-cert) needs mqtt.tls.client_ca_file (--tls-client-ca)")
	}
	if ws := c.MQTT.WebSocket; ws.Addr != "" && !strings.HasPrefix(ws.Path, "/") {
		return fmt.Errorf("mqtt.websocket.path: %q must start with /", ws.Path)
	}
	if l := c.Login; l.Concurrency < 0 || l.CacheTTL < 0 || l.FailureBurst < 0 || l.FailureInterval <= 0 {
		return errors.New("login: concurrency, cache_ttl and failure_burst must not be negative, failure_interval must be positive")
	}
	if c.Store.Engine != "pebble" && c.Store.Engine != "memory" {
		return fmt.Errorf("store.engine: %q is not pebble or memory", c.Store.Engine)
	}
	switch c.Store.Durability {
	case "sync", "batch", "none":
	default:
		return fmt.Errorf("store.durability: %q is not sync, batch or none", c.Store.Durability)
	}
	if c.Store.SyncInterval <= 0 {
		return errors.New("store.sync_interval must be positive")
	}
	m := c.MQTT
	switch {
	case m.MaxPacketSize < 64 || m.MaxPacketSize > 268435460:
		return fmt.Errorf("mqtt.max_packet_size: %d is outside 64..268435460 bytes", m.MaxPacketSize)
	case m.ReceiveMaximum == 0:
		return errors.New("mqtt.receive_maximum must be at least 1")
	case m.MaxInflight == 0:
		return errors.New("mqtt.max_inflight must be at least 1")
	case m.MaxQueued < 1:
		return fmt.Errorf("mqtt.max_queued: %d must be at least 1", m.MaxQueued)
	case m.MaxQueuedOffline < 0:
		return fmt.Errorf("mqtt.max_queued_offline: %d must not be negative", m.MaxQueuedOffline)
	case m.MaxQueuedOfflineBytes < 0:
		return fmt.Errorf("mqtt.max_queued_offline_bytes: %d must not be negative", m.MaxQueuedOfflineBytes)
	case m.MaxStoredMessages < 1:
		return fmt.Errorf("mqtt.max_stored_messages: %d must be at least 1", m.MaxStoredMessages)
	case m.MaxStoredBytes < 1:
		return fmt.Errorf("mqtt.max_stored_bytes: %d must be at least 1", m.MaxStoredBytes)
	case m.MaxSubscriptions < 1:
		return fmt.Errorf("mqtt.max_subscriptions: %d must be at least 1", m.MaxSubscriptions)
	case m.MaxRetained < 1:
		return fmt.Errorf("mqtt.max_retained: %d must be at least 1", m.MaxRetained)
	case m.ConnectTimeout <= 0:
		return errors.New("mqtt.connect_timeout must be positive")
	case m.DisconnectLinger < 0:
		return errors.New("mqtt.disconnect_linger must not be negative (0s: close at once)")
	case m.IdlePark < 0:
		return errors.New("mqtt.idle_park must not be negative (0s: never park)")
	case m.SessionExpiry311 < 0:
		return errors.New("mqtt.session_expiry_311 must not be negative")
	case m.SysInterval < 0:
		return errors.New("mqtt.sys_interval must not be negative")
	case c.ShutdownTimeout <= 0:
		return errors.New("shutdown_timeout must be positive")
	}
	if err := c.validateBridges(); err != nil {
		return err
	}
	return c.validateCluster()
}

func (c *Config) validateBridges() error {
	names := map[string]bool{}
	for i, b := range c.Bridges {
		key := fmt.Sprintf("bridges[%d]", i)
		b = b.WithDefaults()
		switch {
		case b.Name == "":
			return fmt.Errorf("%s.name must be set", key)
		case strings.ContainsAny(b.Name, "/\\+#") || b.Name == "." || b.Name == "..":
			return fmt.Errorf("%s.name: %q must not contain / \\ + # (it names a directory and a topic)", key, b.Name)
		case names[b.Name]:
			return fmt.Errorf("%s.name: %q is the name of an earlier bridge", key, b.Name)
		}
		names[b.Name] = true
		u, err := url.Parse(b.Address)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "tls") || u.Host == "" {
			return fmt.Errorf("%s.address: %q is not tcp://host:port or tls://host:port", key, b.Address)
		}
		switch {
		case b.Protocol != BridgeMQTTv311 && b.Protocol != BridgeMQTTv5:
			return fmt.Errorf("%s.protocol: %q is not mqttv311 or mqttv5", key, b.Protocol)
		case b.KeepAlive < Duration(time.Second) || b.KeepAlive > Duration(65535*time.Second):
			return fmt.Errorf("%s.keep_alive: %s is outside 1s..65535s", key, time.Duration(b.KeepAlive))
		case (b.TLS.CertFile == "") != (b.TLS.KeyFile == ""):
			return fmt.Errorf("%s.tls: cert_file and key_file go together", key)
		case u.Scheme != "tls" && (b.TLS != BridgeTLS{}):
			return fmt.Errorf("%s.tls needs a tls:// address", key)
		case len(b.Topics) == 0:
			return fmt.Errorf("%s.topics must hold at least one rule", key)
		}
		for j, t := range b.Topics {
			if err := validateBridgeTopic(t); err != nil {
				return fmt.Errorf("%s.topics[%d].%w", key, j, err)
			}
		}
	}
	return nil
}

func validateBridgeTopic(t BridgeTopic) error {
	switch {
	case t.Direction != "in" && t.Direction != "out" && t.Direction != "both":
		return fmt.Errorf("direction: %q is not in, out or both", t.Direction)
	case t.QoS > 2:
		return fmt.Errorf("qos: %d is not 0, 1 or 2", t.QoS)
	case strings.ContainsAny(t.LocalPrefix, "+#"):
		return fmt.Errorf("local_prefix: %q must not hold wildcards", t.LocalPrefix)
	case strings.ContainsAny(t.RemotePrefix, "+#"):
		return fmt.Errorf("remote_prefix: %q must not hold wildcards", t.RemotePrefix)
	case t.Pattern == "" && (t.LocalPrefix == "" || t.RemotePrefix == ""):
		return errors.New("pattern: empty needs local_prefix and remote_prefix (they are then the topics)")
	}
	if err := topic.ValidateFilter(t.LocalPrefix + t.Pattern); err != nil {
		return fmt.Errorf("pattern: local_prefix+pattern %q: %w", t.LocalPrefix+t.Pattern, err)
	}
	if err := topic.ValidateFilter(t.RemotePrefix + t.Pattern); err != nil {
		return fmt.Errorf("pattern: remote_prefix+pattern %q: %w", t.RemotePrefix+t.Pattern, err)
	}
	return nil
}

// listener is a listen address with the config key and flag that set it.
type listener struct{ key, flag, addr string }

// listeners are every address Ferry listens on, for validation and for
// PublicListener: devices or applications may connect to each.
func (c *Config) listeners() []listener {
	return []listener{
		{"mqtt.addr", "--mqtt-addr", c.MQTT.Addr},
		{"mqtt.tls.addr", "--mqtts-addr", c.MQTT.TLS.Addr},
		{"mqtt.websocket.addr", "--ws-addr", c.MQTT.WebSocket.Addr},
		{"amqp.app_addr", "--amqp-app-addr", c.AMQP.AppAddr},
		{"amqp.app_tls_addr", "--amqps-app-addr", c.AMQP.AppTLSAddr},
		{"amqp.addr", "--amqp-addr", c.AMQP.Addr},
		{"amqp.tls_addr", "--amqps-addr", c.AMQP.TLSAddr},
		{"http.addr", "--http-addr", c.HTTP.Addr}, // Hono's HTTP adapter takes devices there
		{"http.tls_addr", "--https-addr", c.HTTP.TLSAddr},
		{"coap.addr", "--coap-addr", c.CoAP.Addr},
		{"coap.dtls_addr", "--coaps-addr", c.CoAP.DTLSAddr},
	}
}

// PublicListener returns the first device listener that binds a
// non-loopback address, as "key (flag) address", and whether there is one.
// Such a listener needs authentication, or allow_anonymous.
func (c *Config) PublicListener() (string, bool) {
	for _, l := range c.listeners() {
		if l.addr == "" {
			continue
		}
		if loopback, err := IsLoopback(l.addr); err == nil && !loopback {
			return fmt.Sprintf("%s (%s) %s", l.key, l.flag, l.addr), true
		}
	}
	return "", false
}

// IsLoopback reports whether a listen address binds only loopback
// interfaces. An empty host or an unspecified IP binds every interface.
func IsLoopback(addr string) (bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return false, fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
	}
	return l, nil
}

// Logger builds the process logger from the log settings.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	level, _ := ParseLevel(c.Log.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// YAML renders the configuration as a YAML document, secrets masked.
func (c *Config) YAML() ([]byte, error) {
	shown := *c
	if shown.AdminPassword != "" {
		shown.AdminPassword = "********"
	}
	shown.Registry.PostgresDSN = redactDSN(shown.Registry.PostgresDSN)
	if shown.Cluster.Kafka.SASL.Password != "" {
		shown.Cluster.Kafka.SASL.Password = "********"
	}
	shown.Bridges = append([]Bridge(nil), shown.Bridges...)
	for i := range shown.Bridges {
		if shown.Bridges[i].Password != "" {
			shown.Bridges[i].Password = "********"
		}
	}
	return yaml.Marshal(&shown)
}

// redactDSN hides the password of a PostgreSQL connection string, in URL
// (postgres://user:pass@host/db) or key=value (password=pass) form.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
		return dsn
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, "password=") {
			fields[i] = "password=xxxxx"
		}
	}
	return strings.Join(fields, " ")
}

func (c *Config) validateCluster() error {
	k := c.Cluster.Kafka
	for _, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("cluster.kafka.brokers (--kafka-brokers): %q is not host:port", b)
		}
	}
	if k.Topic == "" || k.RetainedTopic == "" {
		return errors.New("cluster.kafka.topic and cluster.kafka.retained_topic must not be empty")
	}
	switch k.SASL.Mechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if k.SASL.Username == "" || k.SASL.Password == "" {
			return errors.New("cluster.kafka.sasl: the mechanism needs username and password (--kafka-sasl-password)")
		}
	default:
		return fmt.Errorf("cluster.kafka.sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASL.Mechanism)
	}
	if k.StartTimeout <= 0 {
		return errors.New("cluster.kafka.start_timeout must be positive")
	}
	if k.CAFile != "" && !k.TLS {
		return errors.New("cluster.kafka.ca_file needs cluster.kafka.tls: true")
	}
	if k.Topic == k.RetainedTopic {
		return fmt.Errorf("cluster.kafka.retained_topic: %q is also cluster.kafka.topic (the retained topic is compacted)", k.Topic)
	}
	if c.ScaleOut() && c.Registry.PostgresDSN != "" && c.AdminPassword == "" {
		return errors.New("cluster.kafka.brokers (--kafka-brokers) with registry.postgres_dsn (--postgres-dsn) needs admin_password (--admin-password, FERRY_ADMIN_PASSWORD): every node serves the shared registry API with the same password")
	}
	return nil
}
