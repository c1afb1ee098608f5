package packet

import "testing"

// benchPublish is a typical telemetry message: QoS 1, 64-byte payload.
func benchPublish() *Publish {
	return &Publish{QoS: 1, Topic: "telemetry/tenant-1/device-42", PacketID: 42, Payload: make([]byte, 64)}
}

func BenchmarkPublishEncode(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run(versionName(v), func(b *testing.B) {
			p := benchPublish()
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = p.Append(buf[:0], v); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkPublishDecode(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run(versionName(v), func(b *testing.B) {
			raw, err := benchPublish().Append(nil, v)
			if err != nil {
				b.Fatal(err)
			}
			flags, body := raw[0]&0x0F, raw[2:] // remaining length < 128: 1 byte
			var p Publish
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Decode(flags, body, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func versionName(v Version) string {
	switch v {
	case V31:
		return "v3.1"
	case V311:
		return "v3.1.1"
	}
	return "v5"
}
