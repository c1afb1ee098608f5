package e2e

import (
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/pgstore/pgtest"
)

// registryPut sends a PUT to the registry API of n, as an operator would.
func registryPut(t *testing.T, n *node.Node, path, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+n.HTTPAddr().String()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", "admin-pw")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %s", path, resp.Status)
	}
}

// connectedWithin fails the test unless the hub of n has want connected
// sessions of tenant within d.
func connectedWithin(t *testing.T, n *node.Node, tenant string, want int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for n.Hub().TenantStats(tenant).Connected != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections of tenant %s %v after the device was disabled, want %d",
				n.Hub().TenantStats(tenant).Connected, tenant, d, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// refusedLogin checks that a login of the device is refused as not
// authorised.
func refusedLogin(t *testing.T, pub, host, port string, login []string) {
	t.Helper()
	for _, v := range []string{"mqttv311", "mqttv5"} {
		p := startProc(t, pub, append([]string{"-h", host, "-p", port, "-V", v, "-t", "x", "-m", "y"}, login...)...)
		out := p.exit(t)
		if p.cmd.ProcessState.Success() || !strings.Contains(strings.ToLower(out), "not author") {
			t.Errorf("%s login of the disabled device: success %v, %q; want not authorised", v, p.cmd.ProcessState.Success(), out)
		}
	}
}

// TestDisableDeviceDisconnects: disabling a device through the registry
// API closes its connections at once (MQTT 5 and 3.1.1) and its next login
// is refused, although a login of it is in the login cache.
func TestDisableDeviceDisconnects(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.AdminPassword = "admin-pw"
	})
	host, port := hostPort(n)
	provision(t, n, "t1", "d1", "sensor-1", "pw-1", true)
	provision(t, n, "t1", "d2", "sensor-2", "pw-2", true)
	login := []string{"-u", "sensor-1@t1", "-P", "pw-1"}
	// A login now puts d1 into the login cache.
	run(t, pub, append([]string{"-h", host, "-p", port, "-t", "x", "-m", "y"}, login...)...)
	v5 := startProc(t, sub, append([]string{"-h", host, "-p", port, "-V", "mqttv5", "-i", "d1-v5", "-t", "a/#", "-q", "1"}, login...)...)
	v311 := startProc(t, sub, append([]string{"-h", host, "-p", port, "-V", "mqttv311", "-i", "d1-v311", "-t", "a/#", "-q", "1"}, login...)...)
	other := startProc(t, sub, "-h", host, "-p", port, "-i", "d2", "-t", "a/#", "-u", "sensor-2@t1", "-P", "pw-2")
	waitSubscriptions(t, n.Hub(), 3)

	connectedWithin(t, n, "t1", 3, 10*time.Second)

	registryPut(t, n, "/v1/devices/t1/d1", `{"enabled":false}`)
	connectedWithin(t, n, "t1", 1, time.Second)
	// mosquitto_sub tries once more, is refused and gives up (the 3.1.1
	// one after its reconnect delay: 3.1.1 has no DISCONNECT from the
	// server).
	v5.exit(t)
	if out := strings.ToLower(v311.exit(t)); !strings.Contains(out, "not author") {
		t.Errorf("the 3.1.1 subscriber of d1 said %q, want a refused reconnection", out)
	}
	refusedLogin(t, pub, host, port, login)
	select {
	case <-other.done:
		t.Errorf("device d2's subscriber ended too:\n%s", other.out.String())
	default:
	}
}

// TestScaleOutDisableDevice: disabling a device through one node's
// registry API closes its connection on another node within a second, and
// that node refuses its login too.
func TestScaleOutDisableDevice(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	a, b := startCluster(t)
	hostB, portB := hostPort(b)
	heard := make(chan struct{})
	var once sync.Once
	cancel := b.Registry().Subscribe(registry.SubscriberFunc(func(c registry.Change) {
		if c.Kind == registry.CredentialsUpdated && c.Device == "d1" {
			once.Do(func() { close(heard) })
		}
	}))
	t.Cleanup(cancel)
	provision(t, a, "t1", "d1", "sensor-1", "pw-1", true)
	login := []string{"-u", "sensor-1@t1", "-P", "pw-1"}
	// B closes d1's connections when it hears of the new credentials: log
	// in (into B's login cache) after that.
	select {
	case <-heard:
	case <-time.After(10 * time.Second):
		t.Fatal("node B did not hear of d1's credentials")
	}
	var err error
	for range 3 {
		if err = exec.Command(pub, append([]string{"-h", hostB, "-p", portB, "-t", "x", "-m", "y"}, login...)...).Run(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("d1's first login on node B: %v", err)
	}
	s := startProc(t, sub, append([]string{"-h", hostB, "-p", portB, "-V", "mqttv5", "-i", "d1", "-t", "a/#", "-q", "1"}, login...)...)
	waitSubscriptions(t, b.Hub(), 1)
	connectedWithin(t, b, "t1", 1, 10*time.Second)

	registryPut(t, a, "/v1/devices/t1/d1", `{"enabled":false}`)
	connectedWithin(t, b, "t1", 0, time.Second)
	s.exit(t)
	refusedLogin(t, pub, hostB, portB, login)
	hostA, portA := hostPort(a)
	refusedLogin(t, pub, hostA, portA, login)
}

// startCluster starts two nodes of a scale-out cluster with --auth: Kafka
// is franz-go's kfake, the registry a real PostgreSQL.
func startCluster(t *testing.T) (a, b *node.Node) {
	t.Helper()
	dsn := pgtest.Schema(t, pgtest.Start(t))
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	start := func(id string) *node.Node {
		return startFerry(t, func(c *config.Config) {
			c.Auth = true
			c.AdminPassword = "admin-pw"
			c.Store.Engine = "memory"
			c.Registry.PostgresDSN = dsn
			c.Cluster.NodeID = id
			c.Cluster.Kafka.Brokers = kc.ListenAddrs()
		})
	}
	return start("a"), start("b")
}

// pahoWatched connects a paho.golang client (MQTT 5) that reports a
// DISCONNECT from the server.
func pahoWatched(t *testing.T, n *node.Node, id, user, password string) (*paho.Client, chan *paho.Disconnect) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", n.MQTTAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	disconnected := make(chan *paho.Disconnect, 1)
	cl := paho.NewClient(paho.ClientConfig{Conn: nc,
		OnServerDisconnect: func(d *paho.Disconnect) { disconnected <- d }})
	ack, err := cl.Connect(ctx5(t), &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(password)})
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %v", id, err, ack)
	}
	t.Cleanup(func() { cl.Disconnect(&paho.Disconnect{}) })
	return cl, disconnected
}

// disconnectedWithin checks that ch reports a DISCONNECT 0x87 within d,
// whose reason string says why.
func disconnectedWithin(t *testing.T, ch chan *paho.Disconnect, d time.Duration, what, why string) {
	t.Helper()
	select {
	case dc := <-ch:
		if dc.ReasonCode != 0x87 {
			t.Errorf("%s: DISCONNECT %#x, want 0x87 not authorized", what, dc.ReasonCode)
		}
		if dc.Properties == nil || !strings.Contains(dc.Properties.ReasonString, why) {
			t.Errorf("%s: DISCONNECT reason string %+v, want it to say %q", what, dc.Properties, why)
		}
	case <-time.After(d):
		t.Errorf("%s: no DISCONNECT within %v", what, d)
	}
}

// TestRegistryChangesApplyToConnections: a tenant's changed ext.acl rules
// apply to its open connections (one holding a subscription they refuse is
// closed with 0x87, and cannot subscribe again), and changed credentials
// close the device's connections and refuse the old password; disabling
// the tenant closes its devices' connections.
func TestRegistryChangesApplyToConnections(t *testing.T) {
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.AdminPassword = "admin-pw"
	})
	provision(t, n, "t1", "d1", "sensor-1", "pw-1", true)
	registryPut(t, n, "/v1/tenants/t1", `{"ext":{"acl":[{"topic":"a/#"},{"topic":"b/#"}]}}`)
	cl, disconnected := pahoWatched(t, n, "d1", "sensor-1@t1", "pw-1")
	subscribe(t, cl, 0, paho.SubscribeOptions{Topic: "a/#", QoS: 1})

	registryPut(t, n, "/v1/tenants/t1", `{"ext":{"acl":[{"topic":"b/#"}]}}`)
	disconnectedWithin(t, disconnected, time.Second, "subscriber of a/# after a/# was no longer allowed", "access rules changed")
	cl, disconnected = pahoWatched(t, n, "d1", "sensor-1@t1", "pw-1")
	// paho reports the refused subscription as an error, with the SUBACK.
	sa, err := cl.Subscribe(ctx5(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "a/#"}, {Topic: "b/#"}}})
	if sa == nil {
		t.Fatal(err)
	}
	if len(sa.Reasons) != 2 || sa.Reasons[0] != 0x87 || sa.Reasons[1] != 0 {
		t.Errorf("SUBACK under the new rules: %v, want [0x87 0]", sa.Reasons)
	}

	registryPut(t, n, "/v1/credentials/t1/d1",
		`[{"type":"hashed-password","auth-id":"sensor-1","secrets":[{"pwd-plain":"pw-new"}]}]`)
	disconnectedWithin(t, disconnected, time.Second, "device whose credentials changed", "credentials changed")
	nc, err := net.DialTimeout("tcp", n.MQTTAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	old := paho.NewClient(paho.ClientConfig{Conn: nc})
	ack, _ := old.Connect(ctx5(t), &paho.Connect{ClientID: "d1", CleanStart: true,
		UsernameFlag: true, Username: "sensor-1@t1", PasswordFlag: true, Password: []byte("pw-1")})
	if ack == nil || ack.ReasonCode != 0x86 {
		t.Errorf("login with the old password: %v, want CONNACK 0x86", ack)
	}
	_, disconnected = pahoWatched(t, n, "d1", "sensor-1@t1", "pw-new")

	registryPut(t, n, "/v1/tenants/t1", `{"enabled":false}`)
	disconnectedWithin(t, disconnected, time.Second, "device of a disabled tenant", "tenant disabled")
}
