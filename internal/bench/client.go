package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

// client is a minimal MQTT 3.1.1 client for load generation: no library in
// between, so the figures measure the broker, not a client's overhead.
type client struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	buf  []byte
}

func dial(addr, id string, clean bool) (*client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 64<<10)}
	if err := c.write(&packet.Connect{ProtocolName: "MQTT", Version: packet.V311, ClientID: id, CleanStart: clean, KeepAlive: 60}); err != nil {
		conn.Close()
		return nil, err
	}
	if err := c.flush(); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := c.read()
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	ack, ok := p.(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success {
		conn.Close()
		return nil, fmt.Errorf("connect refused: %v", p)
	}
	return c, nil
}

func (c *client) write(p packet.Packet) error {
	var err error
	c.buf, err = p.Append(c.buf[:0], packet.V311)
	if err != nil {
		return err
	}
	_, err = c.w.Write(c.buf)
	return err
}

func (c *client) flush() error { return c.w.Flush() }

func (c *client) read() (packet.Packet, error) {
	h, err := packet.ReadHeader(c.r)
	if err != nil {
		return nil, err
	}
	body := make([]byte, h.Remaining)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, err
	}
	return packet.Decode(h, body, packet.V311)
}

func (c *client) subscribe(filter string, qos byte) error {
	if err := c.write(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}}}); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		p, err := c.read()
		if err != nil {
			return fmt.Errorf("waiting for SUBACK: %w", err)
		}
		if ack, ok := p.(*packet.Suback); ok {
			if len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0].IsError() {
				return fmt.Errorf("subscription to %q refused: %v", filter, ack.ReasonCodes)
			}
			return nil
		}
	}
}

func (c *client) close() {
	c.write(&packet.Disconnect{})
	c.flush()
	c.conn.Close()
}
