package bench

import (
	"bufio"
	"context"
	"errors"
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
	return packet.Read(c.r, packet.V311)
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

// receive reads PUBLISH packets until total have arrived or nothing has
// arrived for idle (the rest counts as lost), acknowledging QoS 1. Every
// message is passed to seen, which runs on the receiving goroutine.
func (c *client) receive(total int, idle time.Duration, seen func(*packet.Publish)) error {
	for n := 0; n < total; {
		c.conn.SetReadDeadline(time.Now().Add(idle))
		p, err := c.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.EOF) {
				return nil // the rest is lost
			}
			return fmt.Errorf("subscriber: %w", err)
		}
		pub, ok := p.(*packet.Publish)
		if !ok {
			continue
		}
		n++
		seen(pub)
		if pub.QoS == 1 {
			if err := c.write(&packet.Puback{PacketID: pub.PacketID}); err != nil {
				return err
			}
			if c.r.Buffered() == 0 {
				if err := c.flush(); err != nil {
					return err
				}
			}
		}
	}
	return c.flush()
}

// publisher sends PUBLISH packets: QoS 0 straight into the write buffer,
// QoS 1 with at most window unacknowledged (a reader goroutine returns
// credits as PUBACKs arrive).
type publisher struct {
	c       *client
	qos     byte
	window  int
	credits chan struct{}
	readErr chan error
	next    uint16
}

// newPublisher prepares c to publish total messages at qos.
func newPublisher(c *client, qos byte, window, total int) *publisher {
	p := &publisher{c: c, qos: qos, window: window}
	if qos == 0 {
		return p
	}
	p.credits = make(chan struct{}, window)
	for range window {
		p.credits <- struct{}{}
	}
	p.readErr = make(chan error, 1)
	go func() {
		for acked := 0; acked < total; {
			pk, err := c.read()
			if err != nil {
				p.readErr <- err
				return
			}
			if _, ok := pk.(*packet.Puback); ok {
				acked++
				p.credits <- struct{}{}
			}
		}
		p.readErr <- nil
	}()
	return p
}

// publish buffers pub (its PacketID is set here for QoS 1), flushing and
// waiting first when the window is full.
func (p *publisher) publish(ctx context.Context, pub *packet.Publish) error {
	pub.QoS = p.qos
	if p.qos > 0 {
		select {
		case <-p.credits:
		default:
			if err := p.c.flush(); err != nil {
				return err
			}
			select {
			case <-p.credits:
			case err := <-p.readErr:
				return fmt.Errorf("reading acks: %v", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		p.next = p.next%65535 + 1
		pub.PacketID = p.next
	}
	return p.c.write(pub)
}

// finish flushes and, for QoS 1, waits for the remaining acknowledgements.
func (p *publisher) finish() error {
	if err := p.c.flush(); err != nil {
		return err
	}
	if p.qos == 0 {
		return nil
	}
	return <-p.readErr
}
