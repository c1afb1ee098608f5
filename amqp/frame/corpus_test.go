package frame

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the named seeds under testdata/fuzz/FuzzParseHeader")

// parseHeaderSeeds are whole frames, as a peer sends them: every golden
// performative on its frame type, a heartbeat, an extended header, and the
// protocol headers a confused peer might send where a frame belongs. The
// fuzz target reads only the first 8 bytes; the rest keeps the seeds real.
func parseHeaderSeeds(t *testing.T) map[string][]byte {
	seeds := map[string][]byte{
		"heartbeat":      AppendEmpty(nil),
		"proto-amqp":     []byte("AMQP\x00\x01\x00\x00"),
		"proto-sasl":     []byte("AMQP\x03\x01\x00\x00"),
		"extended-doff3": h("00 00 00 10 03 00 00 05 de ad be ef 00 53 17 45"),
		"short":          h("00 00 00 08 02 00"),
	}
	for _, g := range goldenBodies {
		typ, ch := TypeAMQP, uint16(3)
		if strings.HasPrefix(g.name, "sasl-") {
			typ, ch = TypeSASL, 0 // SASL frames ignore the channel
		}
		b, err := Append(nil, typ, ch, g.body)
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		seeds[g.name] = b
	}
	return seeds
}

// TestFuzzParseHeaderCorpus checks that testdata/fuzz/FuzzParseHeader holds
// the seeds above; go test -run TestFuzzParseHeaderCorpus -update-corpus
// rewrites them. Files the fuzzer adds (hash names) are left alone.
func TestFuzzParseHeaderCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseHeader")
	for name, b := range parseHeaderSeeds(t) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		path := filepath.Join(dir, name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s is missing or stale (%v): run go test -run TestFuzzParseHeaderCorpus -update-corpus", path, err)
		}
	}
}
