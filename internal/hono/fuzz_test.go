package hono

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{
		"t", "telemetry", "e/?hono-ttl=30", "t/?content-type=application%2Fjson",
		"t//4712", "event/DEFAULT_TENANT/4711/?a=1;b=2", "t/?content-type=application/json",
		"command///res/" + reqID + "/200", "c//4711/s/x/503/?on-error=ignore",
		"c///s//200", "t/?%zz", "sensors/a", "telemetry2/x", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		u, ok, err := ParseUpstream(topic)
		first, _, _ := strings.Cut(topic, "/")
		hono := first == "telemetry" || first == "t" || first == "event" || first == "e" || first == "command" || first == "c"
		if ok != hono {
			t.Fatalf("ParseUpstream(%q): ok %v for first segment %q", topic, ok, first)
		}
		if !ok {
			if err != nil || u.Endpoint != 0 || u.Bag != nil {
				t.Fatalf("ParseUpstream(%q) = %+v, %v without ok", topic, u, err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrTopic) {
				t.Fatalf("ParseUpstream(%q): error %v is not ErrTopic", topic, err)
			}
			return
		}
		path := topic
		if i := strings.LastIndex(topic, "/?"); i >= 0 {
			path = topic[:i]
			if u.Bag == nil {
				t.Fatalf("ParseUpstream(%q): no bag", topic)
			}
			for k := range u.Bag {
				if k != strings.ToLower(k) {
					t.Fatalf("ParseUpstream(%q): bag name %q not lower-cased", topic, k)
				}
			}
		} else if u.Bag != nil {
			t.Fatalf("ParseUpstream(%q): bag %v without /?", topic, u.Bag)
		}
		for _, s := range []string{u.Tenant, u.Device, u.ReqID, u.Status} {
			if strings.Contains(s, "/") {
				t.Fatalf("ParseUpstream(%q) = %+v: segment with '/'", topic, u)
			}
		}
		switch u.Endpoint {
		case Telemetry, Event:
			if u.ReqID != "" || u.Status != "" {
				t.Fatalf("ParseUpstream(%q) = %+v: request id outside a response", topic, u)
			}
			if u.Tenant != "" && u.Device == "" {
				t.Fatalf("ParseUpstream(%q) = %+v: tenant without device", topic, u)
			}
			// The topic without its bag is made of what was parsed.
			rebuilt := []string{first}
			if u.Device != "" {
				rebuilt = []string{first + "/" + u.Tenant + "/" + u.Device}
			}
			if p := strings.TrimSuffix(path, "/"); p != rebuilt[0] {
				t.Fatalf("ParseUpstream(%q) = %+v: path %q is not %q", topic, u, path, rebuilt[0])
			}
		case CommandResponse:
			if u.ReqID == "" {
				t.Fatalf("ParseUpstream(%q) = %+v: no request id", topic, u)
			}
			n, err := strconv.Atoi(u.Status)
			if err != nil || n < 200 || n >= 600 || n/100 == 3 || strconv.Itoa(n) != u.Status {
				t.Fatalf("ParseUpstream(%q) = %+v: status", topic, u)
			}
		default:
			t.Fatalf("ParseUpstream(%q) = %+v: endpoint", topic, u)
		}
	})
}

func FuzzDecodeReqID(f *testing.F) {
	f.Add("106corr-1abc", "corr-1", "dev1/abc", "dev1", MessagingAMQP)
	f.Add(reqID, "0", "4711/f8ab0b53-bd96-4d99-9d9c-56b868474a6a", "4711", MessagingKafka)
	f.Add("0ffx", strings.Repeat("x", 255), "r", "d", 2)
	f.Add("000", "", "d/", "d", 7)
	f.Add("9zz", "a/b", "", "", -1)
	f.Fuzz(func(t *testing.T, id, correlationID, replyID, device string, messaging int) {
		// Any id: DecodeReqID must not panic, and what it reads is in id.
		if r, err := DecodeReqID(id, device); err == nil {
			if !strings.Contains(id, r.CorrelationID) || r.ReplyID == "" || r.Messaging < 0 || r.Messaging > 3 {
				t.Fatalf("DecodeReqID(%q, %q) = %+v", id, device, r)
			}
		} else if !errors.Is(err, ErrReqID) {
			t.Fatalf("DecodeReqID(%q, %q): error %v is not ErrReqID", id, device, err)
		}

		// Round trip: what EncodeReqID makes decodes back, and it
		// survives the trip through a command response topic.
		enc, err := EncodeReqID(correlationID, replyID, device, messaging)
		if err != nil {
			return
		}
		got, err := DecodeReqID(enc, device)
		if err != nil {
			t.Fatalf("DecodeReqID(EncodeReqID(%q, %q, %q, %d) = %q): %v", correlationID, replyID, device, messaging, enc, err)
		}
		want := ReqID{CorrelationID: correlationID, ReplyID: replyID, Messaging: messaging & 3}
		if got != want {
			t.Fatalf("DecodeReqID(%q, %q) = %+v, want %+v", enc, device, got, want)
		}
		u, ok, err := ParseUpstream("c///s/" + enc + "/200")
		if !ok || err != nil || u.ReqID != enc {
			t.Fatalf("response topic with request id %q: %+v, ok %v, err %v", enc, u, ok, err)
		}
	})
}

func FuzzParseCommandFilter(f *testing.F) {
	for _, s := range []string{
		"command///req/#", "c///q/#", "command//+/req/#", "command/t/d/req/#",
		"c/DEFAULT_TENANT//q/#", "command///q/#", "command/+//req/#", "c//#/q/#",
		"command///req", "sensors/#", "#", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		cf, ok, err := ParseCommandFilter(filter)
		if !ok {
			if err != nil || cf != (CommandFilter{}) {
				t.Fatalf("ParseCommandFilter(%q) = %+v, %v without ok", filter, cf, err)
			}
			if first, _, _ := strings.Cut(filter, "/"); first == "command" || first == "c" {
				t.Fatalf("ParseCommandFilter(%q): not ok under %s/", filter, first)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrTopic) {
				t.Fatalf("ParseCommandFilter(%q): error %v is not ErrTopic", filter, err)
			}
			return
		}
		ep, req := "command", "req"
		if cf.Short {
			ep, req = "c", "q"
		}
		if rebuilt := ep + "/" + cf.Tenant + "/" + cf.Device + "/" + req + "/#"; rebuilt != filter {
			t.Fatalf("ParseCommandFilter(%q) = %+v: rebuilds as %q", filter, cf, rebuilt)
		}
		if strings.ContainsAny(cf.Tenant, "/+#") || (cf.Device != "+" && strings.ContainsAny(cf.Device, "/+#")) {
			t.Fatalf("ParseCommandFilter(%q) = %+v: wildcard or '/' in a segment", filter, cf)
		}
		topic := cf.CommandTopic("target", "rid", "name")
		segs := strings.Split(topic, "/")
		dev := cf.Device
		if dev == "+" {
			dev = "target"
		}
		if len(segs) != 6 || segs[0] != ep || segs[1] != cf.Tenant || segs[2] != dev || segs[3] != req || segs[4] != "rid" || segs[5] != "name" {
			t.Fatalf("%+v.CommandTopic = %q", cf, topic)
		}
	})
}

func FuzzParseErrorFilter(f *testing.F) {
	for _, s := range []string{"error///#", "e///#", "error//+/#", "error/t/d/#", "e/t/+/#", "error/#", "e/x", "error/+/d/#", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		ef, ok, err := ParseErrorFilter(filter)
		if !ok || err != nil {
			if err != nil && !errors.Is(err, ErrTopic) {
				t.Fatalf("ParseErrorFilter(%q): error %v is not ErrTopic", filter, err)
			}
			return
		}
		ep := "error"
		if ef.Short {
			ep = "e"
		}
		if rebuilt := ep + "/" + ef.Tenant + "/" + ef.Device + "/#"; rebuilt != filter {
			t.Fatalf("ParseErrorFilter(%q) = %+v: rebuilds as %q", filter, ef, rebuilt)
		}
		if strings.ContainsAny(ef.Tenant, "+#") {
			t.Fatalf("ParseErrorFilter(%q) = %+v: wildcard in the tenant", filter, ef)
		}
		if got := ef.ErrorTopic("dev", "t", "c", 503); strings.ContainsAny(got, "+#") && !strings.ContainsAny(filter, "+#") {
			t.Fatalf("error topic %q of %q has a wildcard", got, filter)
		}
	})
}
