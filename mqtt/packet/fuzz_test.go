package packet

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the golden seeds under testdata/fuzz")

// checkDecoded is the fuzz property: decoding never panics and fails only
// with *Error (or an io error from ReadHeader), and whatever decodes encodes,
// and decodes again to an equal packet whose encoding is the same bytes.
func checkDecoded(t *testing.T, p Packet, err error, v Version) {
	t.Helper()
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v (%T) is not *Error", err, err)
		}
		return
	}
	if c, ok := p.(*Connect); ok {
		v = c.Version // CONNECT states its own version
	}
	raw, err := p.Append(nil, v)
	if err != nil {
		t.Fatalf("decoded %#v does not encode: %v", p, err)
	}
	p2, err := decodeRaw(raw, v)
	if err != nil {
		t.Fatalf("re-decode of % X: %v (from %#v)", raw, err, p)
	}
	if !reflect.DeepEqual(p, p2) {
		t.Fatalf("round trip changed the packet:\n got %#v\nwant %#v", p2, p)
	}
	raw2, err := p2.Append(nil, v)
	if err != nil || !bytes.Equal(raw, raw2) {
		t.Fatalf("encoding not stable: % X then % X (%v)", raw, raw2, err)
	}
}

// FuzzDecode feeds whole packets (fixed header included) to ReadHeader and
// Decode, in 3.1.1 and in 5.0; the packet type comes from the first byte.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bytes.NewReader(data)
		h, err := ReadHeader(br)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) && err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("ReadHeader: unexpected error %v", err)
			}
			return
		}
		body := data[len(data)-br.Len():]
		if len(body) >= h.Remaining {
			body = body[:h.Remaining]
		} else {
			// Let the fuzzer explore bodies without having to keep the
			// remaining length in step: decode what there is.
			h.Remaining = len(body)
		}
		for _, v := range []Version{V311, V5} {
			p, err := Decode(h, body, v)
			checkDecoded(t, p, err, v)
		}
	})
}

// FuzzConnect feeds CONNECT bodies, the most complex decoder, without
// making the fuzzer find a consistent fixed header first.
func FuzzConnect(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Decode(Header{Type: TypeConnect, Remaining: len(body)}, body, 0)
		checkDecoded(t, p, err, 0)
	})
}

// corpusFile is the go test fuzz v1 encoding of one []byte input.
func corpusFile(b []byte) string {
	return fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
}

// TestFuzzCorpus checks that the committed seed corpus holds every golden
// vector (FuzzDecode) and every CONNECT body (FuzzConnect). Run
// go test -run TestFuzzCorpus -update-corpus to rewrite it.
func TestFuzzCorpus(t *testing.T) {
	for _, g := range goldens {
		name := strings.ReplaceAll(g.name, "/", "-")
		seeds := map[string][]byte{"FuzzDecode": g.raw}
		if g.pkt.Type() == TypeConnect {
			h, _ := ReadHeader(bytes.NewReader(g.raw))
			seeds["FuzzConnect"] = g.raw[h.Size()-h.Remaining:]
		}
		for target, data := range seeds {
			path := filepath.Join("testdata", "fuzz", target, name)
			want := corpusFile(data)
			if *updateCorpus {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != want {
				t.Errorf("%s: missing or stale (%v); run go test -run TestFuzzCorpus -update-corpus", path, err)
			}
		}
	}
}
