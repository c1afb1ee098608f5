package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
	"github.com/ferry-iot/ferry/internal/registry"
)

// provision creates a tenant with one device that logs in with a password,
// through the registry the node serves.
func provision(t testing.TB, n *node.Node, tenant, device, authID, password string, deviceEnabled bool) {
	t.Helper()
	provisionHashed(t, n, tenant, device, authID, password, "sha-256", deviceEnabled)
}

func provisionHashed(t testing.TB, n *node.Node, tenant, device, authID, password, hash string, deviceEnabled bool) {
	t.Helper()
	ctx := context.Background()
	reg := n.Registry()
	if _, _, err := reg.CreateTenant(ctx, tenant, registry.Tenant{Enabled: true}); err != nil && !errors.Is(err, registry.ErrConflict) {
		t.Fatal(err)
	}
	if _, _, err := reg.CreateDevice(ctx, tenant, device, registry.Device{Enabled: deviceEnabled}); err != nil {
		t.Fatal(err)
	}
	creds, err := registry.ParseCredentials([]byte(`[{"type":"hashed-password","auth-id":"` + authID +
		`","secrets":[{"pwd-plain":"` + password + `","hash-function":"` + hash + `"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.SetCredentials(ctx, tenant, device, creds, ""); err != nil {
		t.Fatal(err)
	}
}

// TestMosquittoAuthentication logs devices in as auth-id@tenant with
// mosquitto clients, and checks the refusal codes and tenant isolation.
func TestMosquittoAuthentication(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) { c.Auth = true })
	host, port := hostPort(n)
	provision(t, n, "acme", "dev-1", "sensor-1", "pw-acme", true)
	provision(t, n, "globex", "dev-1", "sensor-1", "pw-globex", true)
	provision(t, n, "initech", "dev-off", "off-1", "pw-off", false)

	// Same topic in two tenants: each subscriber sees its own tenant only.
	sa := startProc(t, sub, "-h", host, "-p", port, "-u", "sensor-1@acme", "-P", "pw-acme", "-t", "#", "-C", "1", "-v", "-q", "1")
	sg := startProc(t, sub, "-h", host, "-p", port, "-u", "sensor-1@globex", "-P", "pw-globex", "-t", "#", "-C", "1", "-v", "-q", "1", "-V", "mqttv5")
	waitSubscriptions(t, n.Hub(), 2)
	run(t, pub, "-h", host, "-p", port, "-u", "sensor-1@acme", "-P", "pw-acme", "-t", "room/temp", "-m", "acme-data", "-q", "1")
	run(t, pub, "-h", host, "-p", port, "-u", "sensor-1@globex", "-P", "pw-globex", "-t", "room/temp", "-m", "globex-data", "-q", "1")
	if out := strings.TrimSpace(sa.wait(t)); out != "room/temp acme-data" {
		t.Errorf("acme subscriber got %q", out)
	}
	if out := strings.TrimSpace(sg.wait(t)); out != "room/temp globex-data" {
		t.Errorf("globex subscriber got %q", out)
	}

	refusals := []struct {
		name, version string
		args          []string
		want          string
	}{
		// 3.1.1 return code 4 / MQTT 5 reason 0x86.
		{"wrong password 3.1.1", "mqttv311", []string{"-u", "sensor-1@acme", "-P", "nope"}, "bad user name or password"},
		{"wrong password 5", "mqttv5", []string{"-u", "sensor-1@acme", "-P", "nope"}, "bad user name or password"},
		{"unknown tenant 3.1.1", "mqttv311", []string{"-u", "sensor-1@nowhere", "-P", "pw-acme"}, "bad user name or password"},
		// 3.1.1 return code 5 / MQTT 5 reason 0x87.
		{"anonymous 3.1.1", "mqttv311", nil, "not authorised"},
		{"anonymous 5", "mqttv5", nil, "not authorized"},
		{"disabled device 3.1.1", "mqttv311", []string{"-u", "off-1@initech", "-P", "pw-off"}, "not authorised"},
		{"disabled device 5", "mqttv5", []string{"-u", "off-1@initech", "-P", "pw-off"}, "not authorized"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-h", host, "-p", port, "-V", tt.version, "-t", "x", "-m", "y"}, tt.args...)
			p := startProc(t, pub, args...)
			out := p.exit(t)
			if p.cmd.ProcessState.Success() {
				t.Fatalf("login succeeded: %s", out)
			}
			if !strings.Contains(strings.ToLower(out), tt.want) {
				t.Errorf("mosquitto_pub said %q, want it to mention %q", out, tt.want)
			}
		})
	}
}

// TestTenantIsolation: whatever topic a device of tenant acme uses
// (wildcards, $share, $SYS, topics spelling another tenant's name), it sees
// nothing of tenant globex: no live messages, no retained messages, no wills.
func TestTenantIsolation(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.MQTT.SysInterval = config.Duration(time.Minute)
	})
	host, port := hostPort(n)
	provision(t, n, "acme", "spy", "spy", "pw-spy", true)
	provision(t, n, "globex", "dev", "dev", "pw-dev", true)
	acme := []string{"-h", host, "-p", port, "-u", "spy@acme", "-P", "pw-spy", "-V", "mqttv5"}
	globex := []string{"-h", host, "-p", port, "-u", "dev@globex", "-P", "pw-dev"}

	// globex leaves a retained message before the spy arrives.
	run(t, pub, append(globex, "-t", "globex/secret", "-m", "retained-secret", "-r", "-q", "1")...)
	filters := []string{"#", "+/#", "globex/#", "$share/g/#", "$SYS/#", "acme/#"}
	spyArgs := append([]string{}, acme...)
	for _, f := range filters {
		spyArgs = append(spyArgs, "-t", f)
	}
	spy := startProc(t, sub, append(spyArgs, "-v", "-W", "3")...)
	waitSubscriptions(t, n.Hub(), len(filters))

	// Live messages, and a will from a globex device that dies.
	for _, topic := range []string{"globex/secret", "acme/secret", "a/b", "$share/g/x"} {
		run(t, pub, append(globex, "-t", topic, "-m", "live-secret", "-q", "1")...)
	}
	dying := startProc(t, sub, append(globex, "-t", "idle", "-k", "5", "--will-topic", "globex/will", "--will-payload", "will-secret")...)
	waitSubscriptions(t, n.Hub(), len(filters)+1)
	dying.cmd.Process.Kill()
	dying.exit(t)
	// A message the spy must see, so its silence about the rest means
	// something: acme's own traffic still flows.
	run(t, pub, append(acme, "-t", "acme/own", "-m", "own", "-q", "1")...)

	out := spy.exit(t)
	if strings.Contains(out, "secret") {
		t.Errorf("a device of acme received globex data:\n%s", out)
	}
	if !strings.Contains(out, "acme/own own") {
		t.Errorf("the spy did not even see its own tenant's message:\n%s", out)
	}
	if !strings.Contains(out, "$SYS/broker/") {
		t.Errorf("the spy got no $SYS topics of its own tenant:\n%s", out)
	}
}

// TestLoginRateLimit: after the failure burst, an address is refused with
// 0x9F for a while, even with the right password.
func TestLoginRateLimit(t *testing.T) {
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.Login.FailureBurst = 3
		c.Login.FailureInterval = config.Duration(time.Hour)
	})
	provision(t, n, "acme", "dev", "dev", "right-pw", true)
	addr := n.MQTTAddr().String()
	login := func(pw string) byte {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		cl := paho.NewClient(paho.ClientConfig{Conn: nc})
		ack, err := cl.Connect(ctx5(t), &paho.Connect{ClientID: "rl", CleanStart: true, KeepAlive: 30,
			UsernameFlag: true, Username: "dev@acme", PasswordFlag: true, Password: []byte(pw)})
		if ack == nil {
			t.Fatalf("no CONNACK: %v", err)
		}
		if ack.ReasonCode == 0 {
			cl.Disconnect(&paho.Disconnect{})
		}
		return ack.ReasonCode
	}
	if rc := login("right-pw"); rc != 0 {
		t.Fatalf("right password refused: %#x", rc)
	}
	for i := range 3 {
		if rc := login("wrong"); rc != 0x86 {
			t.Fatalf("failure %d: %#x, want 0x86", i, rc)
		}
	}
	if rc := login("right-pw"); rc != 0x9F {
		t.Errorf("after the burst: %#x, want 0x9F connection rate exceeded", rc)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestCertificateLogin: with --auth, a device presenting a client
// certificate issued by its tenant's trusted CA logs in by its subject DN
// (mosquitto_pub --cert/--key); a certificate of an untrusted CA is refused.
func TestCertificateLogin(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pki, other := newTestPKI(t), newTestPKI(t)
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.MQTT.TLS = config.TLS{Addr: "127.0.0.1:0", CertFile: pki.ServerCert, KeyFile: pki.ServerKey}
	})
	ctx := context.Background()
	reg := n.Registry()
	ca := readCert(t, pki.CA)
	if _, _, err := reg.CreateTenant(ctx, "acme", registry.Tenant{Enabled: true, TrustedCAs: []registry.TrustedCA{{Cert: ca.Raw}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.CreateDevice(ctx, "acme", "dev-x509", registry.Device{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	subject := readCert(t, pki.ClientCert).Subject.String()
	if _, err := reg.SetCredentials(ctx, "acme", "dev-x509", []registry.Credential{{Type: registry.TypeX509, AuthID: subject, Enabled: true}}, ""); err != nil {
		t.Fatal(err)
	}
	// An acme device on the plain listener watches the tenant.
	provision(t, n, "globex", "g", "g", "pw-g", true) // another tenant, to show where the message goes
	_, tlsPort, _ := net.SplitHostPort(n.TLSAddr().String())
	host, _ := hostPort(n)
	watch := startProc(t, sub, "-h", host, "-p", tlsPort, "--cafile", pki.CA, "--cert", pki.ClientCert, "--key", pki.ClientKey,
		"-i", "watcher", "-t", "#", "-C", "1", "-v")
	deadline := time.Now().Add(10 * time.Second)
	for n.Hub().TenantStats("acme").Subscripts != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the certificate-authenticated watcher did not subscribe: %s", watch.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	run(t, pub, "-h", host, "-p", tlsPort, "--cafile", pki.CA, "--cert", pki.ClientCert, "--key", pki.ClientKey,
		"-t", "x509/hello", "-m", "by-certificate", "-q", "1")
	if out := strings.TrimSpace(watch.wait(t)); out != "x509/hello by-certificate" {
		t.Errorf("watcher got %q", out)
	}
	if st := n.Hub().TenantStats("acme"); st.Published != 1 {
		t.Errorf("acme published %d messages, want the certificate login's 1", st.Published)
	}

	p := startProc(t, pub, "-h", host, "-p", tlsPort, "--cafile", pki.CA, "--cert", other.ClientCert, "--key", other.ClientKey,
		"-t", "x509/hello", "-m", "untrusted", "-V", "mqttv5")
	if out := p.exit(t); p.cmd.ProcessState.Success() || !strings.Contains(strings.ToLower(out), "bad user name or password") {
		t.Errorf("certificate of an untrusted CA: %s", out)
	}
}

// TestAccessRules: rules from the config file and from the tenant's
// registry entry; refused subscriptions get SUBACK 0x80 (3.1.1) / 0x87 (5),
// refused publishes are dropped (3.1.1) or answered 0x87 (5).
func TestAccessRules(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.ACL = []config.ACLRule{
			{Tenant: "acme", Topic: "devices/%u/#"},
			{Tenant: "acme", Access: "subscribe", Topic: "alerts/#"},
		}
	})
	host, port := hostPort(n)
	provision(t, n, "acme", "d1", "s1", "pw-1", true)
	provision(t, n, "acme", "d2", "s2", "pw-2", true)
	s1 := []string{"-h", host, "-p", port, "-u", "s1@acme", "-P", "pw-1"}
	s2 := []string{"-h", host, "-p", port, "-u", "s2@acme", "-P", "pw-2"}

	// s1 may read its own tree; subscribing to s2's is refused.
	own := startProc(t, sub, append(s1, "-t", "devices/s1/#", "-C", "1", "-v", "-q", "1")...)
	waitSubscriptions(t, n.Hub(), 1)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		p := startProc(t, sub, append(s1, "-V", v, "-t", "devices/s2/#", "-C", "1", "-W", "3")...)
		out := p.exit(t)
		if !strings.Contains(out, "denied") { // mosquitto_sub: "All subscription requests were denied."
			t.Errorf("%s refused subscription: mosquitto_sub said %q", v, out)
		}
		if n.Hub().TenantStats("acme").Subscripts != 1 {
			t.Errorf("%s: a refused subscription was added", v)
		}
	}
	// s2 publishing into s1's tree: dropped in 3.1.1, 0x87 in v5.
	run(t, pub, append(s2, "-t", "devices/s1/x", "-m", "forged", "-q", "1")...)
	p := startProc(t, pub, append(s2, "-V", "mqttv5", "-t", "devices/s1/x", "-m", "forged5", "-q", "1")...)
	if out := p.exit(t); !strings.Contains(strings.ToLower(out), "not authorized") {
		t.Errorf("v5 refused publish: %q, want a not authorized PUBACK", out)
	}
	// s1 publishing into its own tree is delivered.
	run(t, pub, append(s1, "-t", "devices/s1/x", "-m", "genuine", "-q", "1")...)
	if out := strings.TrimSpace(own.wait(t)); out != "devices/s1/x genuine" {
		t.Errorf("s1 got %q, want only its own message", out)
	}

	// The tenant's registry entry adds a rule of its own.
	ctx := context.Background()
	ten, ver, err := n.Registry().GetTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	ten.Ext = map[string]any{"acl": []any{map[string]any{"topic": "shared/#"}}}
	if _, err := n.Registry().UpdateTenant(ctx, "acme", ten, ver); err != nil {
		t.Fatal(err)
	}
	shared := startProc(t, sub, append(s2, "-t", "shared/#", "-C", "1", "-v")...)
	waitSubscriptions(t, n.Hub(), 1)
	run(t, pub, append(s1, "-t", "shared/news", "-m", "hello", "-q", "1")...)
	if out := strings.TrimSpace(shared.wait(t)); out != "shared/news hello" {
		t.Errorf("tenant rule from the registry: got %q", out)
	}
}

// TestRestartKeepsTenantState: the registry and the retained messages of a
// tenant without persistent sessions survive a restart.
func TestRestartKeepsTenantState(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	cfg := config.Default()
	cfg.MQTT.Addr, cfg.HTTP.Addr, cfg.MQTT.SysInterval = "127.0.0.1:0", "127.0.0.1:0", 0
	cfg.AMQP.AppAddr = "127.0.0.1:0"
	cfg.AMQP.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Auth = true
	n := startNode(t, cfg)
	provision(t, n, "acme", "d1", "s1", "pw-1", true)
	host, port := hostPort(n)
	run(t, pub, "-h", host, "-p", port, "-u", "s1@acme", "-P", "pw-1", "-t", "state/door", "-m", "open", "-r", "-q", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	n2 := startNode(t, cfg)
	host, port = hostPort(n2)
	out := run(t, sub, "-h", host, "-p", port, "-u", "s1@acme", "-P", "pw-1", "-t", "state/#", "-C", "1", "-v", "-W", "5")
	if strings.TrimSpace(out) != "state/door open" {
		t.Errorf("after a restart: %q, want the retained message", out)
	}
}

// TestPublicListenerTurnsAuthOn: a listener on a non-loopback address turns
// authentication on by default once the registry holds tenants: anonymous
// clients are refused, devices log in.
func TestPublicListenerTurnsAuthOn(t *testing.T) {
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	cfg := config.Default()
	cfg.MQTT.Addr, cfg.HTTP.Addr, cfg.MQTT.SysInterval = "127.0.0.1:0", "", 0
	cfg.AMQP.AppAddr = "127.0.0.1:0"
	cfg.AMQP.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	n := startNode(t, cfg)
	provision(t, n, "acme", "d1", "s1", "pw-1", true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	cfg.MQTT.Addr = "0.0.0.0:0" // all interfaces; the test talks to 127.0.0.1 only
	cfg.AMQP.AppAddr = "127.0.0.1:0"
	cfg.AMQP.Addr = "127.0.0.1:0"
	n2 := startNode(t, cfg)
	_, port, _ := net.SplitHostPort(n2.MQTTAddr().String())
	p := startProc(t, pub, "-h", "127.0.0.1", "-p", port, "-t", "x", "-m", "anonymous")
	if out := p.exit(t); p.cmd.ProcessState.Success() || !strings.Contains(out, "not authorised") {
		t.Errorf("anonymous client on a public listener: %q", out)
	}
	run(t, pub, "-h", "127.0.0.1", "-p", port, "-u", "s1@acme", "-P", "pw-1", "-t", "x", "-m", "device", "-q", "1")
}
