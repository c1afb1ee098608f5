package mqttadapter

import "github.com/ferry-iot/ferry/mqtt"

// The client's inbound QoS 2 ids awaiting PUBREL live in its hub session
// (mqtt.QoS2SessionHandler), so that a message resent with DUP on a later
// connection of the session is delivered once.

var _ mqtt.QoS2SessionHandler = (*Adapter)(nil)

// InboundQoS2 implements mqtt.QoS2SessionHandler.
func (a *Adapter) InboundQoS2(c *mqtt.Conn) []uint16 {
	if st := state(c); st != nil && st.session != nil {
		return st.session.InboundQoS2()
	}
	return nil
}

// AwaitRelease implements mqtt.QoS2SessionHandler.
func (a *Adapter) AwaitRelease(c *mqtt.Conn, id uint16) {
	if st := state(c); st != nil && st.session != nil {
		st.session.AwaitRelease(id)
	}
}

// ReleasedInbound implements mqtt.QoS2SessionHandler.
func (a *Adapter) ReleasedInbound(c *mqtt.Conn, id uint16) {
	if st := state(c); st != nil && st.session != nil {
		st.session.ReleasedInbound(id)
	}
}
