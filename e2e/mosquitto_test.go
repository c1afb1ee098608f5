package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/config"
)

// TestMosquittoClients drives Ferry with mosquitto_pub and mosquitto_sub in
// both protocol versions and every QoS, with a mix of subscriber and
// publisher QoS to check the downgrade to the granted QoS.
func TestMosquittoClients(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t)
	host, port := hostPort(n)

	subs := 0
	for _, version := range []string{"mqttv311", "mqttv5"} {
		for _, qos := range []string{"0", "1", "2"} {
			t.Run(version+"/qos"+qos, func(t *testing.T) {
				topic := fmt.Sprintf("e2e/%s/%s", version, qos)
				s := startProc(t, sub, "-h", host, "-p", port, "-V", version, "-q", qos,
					"-t", topic+"/#", "-C", "3", "-v")
				subs++
				waitSubscriptions(t, n.Hub(), subs)
				for i, pq := range []string{"0", "1", "2"} {
					run(t, pub, "-h", host, "-p", port, "-V", version, "-q", pq,
						"-t", fmt.Sprintf("%s/m%d", topic, i), "-m", "hello "+pq)
				}
				out := s.wait(t)
				for i, pq := range []string{"0", "1", "2"} {
					want := fmt.Sprintf("%s/m%d hello %s", topic, i, pq)
					if !strings.Contains(out, want) {
						t.Errorf("subscriber output lacks %q:\n%s", want, out)
					}
				}
				subs-- // -C exits and the clean session is gone
				waitFor(t, "subscriber gone", func() bool { return n.Hub().Stats().Subscripts == subs })
			})
		}
	}
}

// TestMosquittoRetained sets, replaces and clears a retained message.
func TestMosquittoRetained(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t)
	host, port := hostPort(n)

	run(t, pub, "-h", host, "-p", port, "-t", "r/state", "-m", "first", "-r", "-q", "1")
	run(t, pub, "-h", host, "-p", port, "-t", "r/state", "-m", "second", "-r", "-q", "1")
	for _, version := range []string{"mqttv311", "mqttv5"} {
		out := run(t, sub, "-h", host, "-p", port, "-V", version, "-t", "r/#", "-C", "1", "-v", "-W", "10")
		if strings.TrimSpace(out) != "r/state second" {
			t.Errorf("%s retained = %q, want %q", version, out, "r/state second")
		}
	}
	// An empty retained message clears the topic [MQTT-3.3.1-10]. At
	// QoS 1, so that mosquitto_pub ends only once the hub routed it: the
	// retained count drops before the store write and the routing, and a
	// subscriber that came in between would get the empty message live.
	run(t, pub, "-h", host, "-p", port, "-t", "r/state", "-n", "-r", "-q", "1")
	waitFor(t, "retained cleared", func() bool { return n.Hub().Stats().Retained == 0 })
	// --retained-only exits as soon as a non-retained message or nothing
	// arrives: with -W 1 it must time out having printed nothing.
	s := startProc(t, sub, "-h", host, "-p", port, "-t", "r/#", "-v", "-W", "1")
	if out := s.exit(t); strings.Contains(out, "r/state") {
		t.Errorf("cleared retained message still delivered: %q", out)
	}
}

// TestMosquittoWill checks that a will is published when the client dies
// and not when it disconnects normally.
func TestMosquittoWill(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t)
	host, port := hostPort(n)

	for _, version := range []string{"mqttv311", "mqttv5"} {
		t.Run(version, func(t *testing.T) {
			waitFor(t, "earlier clients gone", func() bool { return n.Hub().Stats().Subscripts == 0 })
			base := 0
			watcher := startProc(t, sub, "-h", host, "-p", port, "-V", version, "-t", "will/"+version, "-C", "1", "-v", "-q", "1")
			waitSubscriptions(t, n.Hub(), base+1)

			// A client that ends with a normal DISCONNECT leaves no will.
			// (mosquitto_sub's -W timeout sends DISCONNECT 0x04 "with will"
			// in v5, so mosquitto_pub is the well-behaved client here.)
			run(t, pub, "-h", host, "-p", port, "-V", version, "-t", "idle/x", "-m", "bye",
				"--will-topic", "will/"+version, "--will-payload", "normal", "--will-qos", "1")

			dying := startProc(t, sub, "-h", host, "-p", port, "-V", version, "-t", "idle/y", "-k", "5",
				"--will-topic", "will/"+version, "--will-payload", "died", "--will-qos", "1")
			waitSubscriptions(t, n.Hub(), base+2)
			if out := watcher.out.String(); out != "" {
				t.Fatalf("will published after a normal disconnect: %q", out)
			}
			dying.cmd.Process.Signal(syscall.SIGKILL)

			out := watcher.wait(t)
			if strings.TrimSpace(out) != "will/"+version+" died" {
				t.Errorf("will watcher got %q, want only the will of the killed client", out)
			}
		})
	}
}

// TestSysTopics reads the $SYS tree with mosquitto_sub.
func TestSysTopics(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	n := startFerry(t, func(c *config.Config) { c.MQTT.SysInterval = config.Duration(time.Minute) })
	host, port := hostPort(n)
	// Wildcards starting the filter do not match $SYS [MQTT-4.7.2-1]; the
	// figures are retained, so -C gets them at once.
	out := run(t, sub, "-h", host, "-p", port, "-t", "$SYS/broker/#", "-C", "14", "-v", "-W", "10")
	for _, want := range []string{"$SYS/broker/version ferry ", "$SYS/broker/uptime ", "$SYS/broker/clients/connected ", "$SYS/broker/messages/received "} {
		if !strings.Contains(out, want) {
			t.Errorf("$SYS output lacks %q:\n%s", want, out)
		}
	}
	s := startProc(t, sub, "-h", host, "-p", port, "-t", "#", "-v", "-W", "1")
	if out := s.exit(t); strings.Contains(out, "$SYS") {
		t.Errorf("subscription to # received $SYS topics:\n%s", out)
	}
}

// TestMosquittoTopicAliases: mosquitto_sub announces a Topic Alias Maximum
// that libmosquitto 2.0 cannot resolve (an aliased PUBLISH with an empty
// topic closes its connection), which is why Ferry sends no outbound
// aliases unless mqtt.outbound_topic_aliases is set. With the default, it
// must see every topic.
func TestMosquittoTopicAliases(t *testing.T) {
	sub := requirePeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := requirePeer(t, "mosquitto_pub", "mosquitto-clients")
	n := startFerry(t)
	host, port := hostPort(n)
	s := startProc(t, sub, "-h", host, "-p", port, "-V", "mqttv5", "-D", "connect", "topic-alias-maximum", "2",
		"-t", "al/#", "-C", "5", "-v")
	waitSubscriptions(t, n.Hub(), 1)
	for i, topic := range []string{"al/a", "al/b", "al/a", "al/c", "al/b"} {
		run(t, pub, "-h", host, "-p", port, "-t", topic, "-m", fmt.Sprint(i), "-q", "1")
	}
	want := "al/a 0\nal/b 1\nal/a 2\nal/c 3\nal/b 4"
	if out := strings.TrimSpace(s.wait(t)); out != want {
		t.Errorf("mosquitto_sub with topic aliases printed:\n%s\nwant:\n%s", out, want)
	}
}
