package bridge

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/hub"
)

func TestRemoteTopic(t *testing.T) {
	out := []rule{
		{filter: "sensors/#", to: "site1/", qos: 1},
		{filter: "local/cmd", from: "local/", to: "remote/", qos: 2},
		{filter: "a/b", from: "a/b", to: "x/y", qos: 0}, // empty pattern: the prefixes are the topics
	}
	b := &Bridge{out: out}
	for _, c := range []struct {
		topic, want  string
		qos, wantQoS byte
		drop         bool
	}{
		{topic: "sensors/t1", want: "site1/sensors/t1", qos: 2, wantQoS: 1},
		{topic: "local/cmd", want: "remote/cmd", qos: 2, wantQoS: 2},
		{topic: "a/b", want: "x/y", qos: 1, wantQoS: 0},
		{topic: "other", drop: true},
	} {
		m, ok := b.remoteMessage(hub.Delivery{Message: &hub.Message{Topic: c.topic}, QoS: c.qos})
		switch {
		case ok == c.drop:
			t.Errorf("%s: forwarded %v, want %v", c.topic, ok, !c.drop)
		case ok && (m.Topic != c.want || m.QoS != c.wantQoS):
			t.Errorf("%s: %s at QoS %d, want %s at QoS %d", c.topic, m.Topic, m.QoS, c.want, c.wantQoS)
		}
	}
}
