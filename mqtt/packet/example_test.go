package packet_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/ferry-iot/ferry/mqtt/packet"
)

func ExampleDecode() {
	wire := []byte{0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'} // PUBLISH a/b "hi"
	br := bufio.NewReader(bytes.NewReader(wire))

	h, err := packet.ReadHeader(br)
	if err != nil {
		panic(err)
	}
	body := make([]byte, h.Remaining)
	if _, err := io.ReadFull(br, body); err != nil {
		panic(err)
	}
	p, err := packet.Decode(h, body, packet.V311)
	if err != nil {
		panic(err)
	}
	pub := p.(*packet.Publish)
	fmt.Printf("%v %s %q\n", p.Type(), pub.Topic, pub.Payload)
	// Output: PUBLISH a/b "hi"
}

func ExamplePuback_Append() {
	var buf []byte
	buf, _ = (&packet.Puback{PacketID: 7}).Append(buf, packet.V5)
	buf, _ = (&packet.Puback{PacketID: 8, ReasonCode: packet.NoMatchingSubscribers}).Append(buf, packet.V5)
	fmt.Printf("% X\n", buf)
	// Output: 40 02 00 07 40 03 00 08 10
}

func ExampleError() {
	// A SUBSCRIBE whose filter puts '#' before the last level.
	body := []byte{0x00, 0x01, 0x00, 0x00, 0x03, 'a', '#', 'b', 0x00}
	_, err := packet.Decode(packet.Header{Type: packet.TypeSubscribe, Flags: 0b0010, Remaining: len(body)}, body, packet.V5)
	var e *packet.Error
	if errors.As(err, &e) {
		fmt.Printf("send DISCONNECT with 0x%02X (%v)\n", byte(e.Code), e.Code)
	}
	// Output: send DISCONNECT with 0x8F (Topic Filter invalid)
}
