package hono

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// reqID is a request id as EncodeReqID makes it for a reply id
// "4711/<uuid>" and device 4711 (the example of Hono's MQTT user guide).
const reqID = "1010f8ab0b53-bd96-4d99-9d9c-56b868474a6a"

func TestParseUpstream(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		want  Upstream
	}{
		// Authenticated device, long and short forms.
		{"telemetry", "telemetry", Upstream{Endpoint: Telemetry}},
		{"t", "t", Upstream{Endpoint: Telemetry}},
		{"event", "event", Upstream{Endpoint: Event}},
		{"e", "e", Upstream{Endpoint: Event}},
		{"trailing slash", "t/", Upstream{Endpoint: Telemetry}},
		{"event trailing slash", "event/", Upstream{Endpoint: Event}},

		// Unauthenticated device: tenant and device.
		{"telemetry tenant device", "telemetry/DEFAULT_TENANT/4711", Upstream{Endpoint: Telemetry, Tenant: "DEFAULT_TENANT", Device: "4711"}},
		{"t tenant device", "t/DEFAULT_TENANT/4711", Upstream{Endpoint: Telemetry, Tenant: "DEFAULT_TENANT", Device: "4711"}},
		{"event tenant device", "event/DEFAULT_TENANT/4711", Upstream{Endpoint: Event, Tenant: "DEFAULT_TENANT", Device: "4711"}},
		{"e tenant device", "e/DEFAULT_TENANT/4711", Upstream{Endpoint: Event, Tenant: "DEFAULT_TENANT", Device: "4711"}},

		// Gateway publishing for one of its devices.
		{"gateway t", "t//4712", Upstream{Endpoint: Telemetry, Device: "4712"}},
		{"gateway telemetry", "telemetry//4712", Upstream{Endpoint: Telemetry, Device: "4712"}},
		{"gateway e", "e//4712", Upstream{Endpoint: Event, Device: "4712"}},
		{"gateway event", "event//4712", Upstream{Endpoint: Event, Device: "4712"}},

		// Property bag.
		{"bag content-type", "t/?content-type=application%2Fjson",
			Upstream{Endpoint: Telemetry, Bag: url.Values{"content-type": {"application/json"}}}},
		{"bag hono-ttl", "e/?hono-ttl=30",
			Upstream{Endpoint: Event, Bag: url.Values{"hono-ttl": {"30"}}}},
		{"bag after tenant device", "event/DEFAULT_TENANT/4711/?hono-ttl=15&content-type=text%2Fplain",
			Upstream{Endpoint: Event, Tenant: "DEFAULT_TENANT", Device: "4711", Bag: url.Values{"hono-ttl": {"15"}, "content-type": {"text/plain"}}}},
		{"bag after gateway device", "t//4712/?correlation-id=7",
			Upstream{Endpoint: Telemetry, Device: "4712", Bag: url.Values{"correlation-id": {"7"}}}},
		{"empty bag", "t/?", Upstream{Endpoint: Telemetry, Bag: url.Values{}}},
		{"bag after double slash", "t//?on-error=ignore",
			Upstream{Endpoint: Telemetry, Bag: url.Values{"on-error": {"ignore"}}}},
		{"bag repeated name", "t/?on-error=ignore&on-error=skip-ack",
			Upstream{Endpoint: Telemetry, Bag: url.Values{"on-error": {"ignore", "skip-ack"}}}},
		// Hono looks names up case-insensitively.
		{"bag name case", "t/?Content-Type=text%2Fplain&HONO-TTL=5",
			Upstream{Endpoint: Telemetry, Bag: url.Values{"content-type": {"text/plain"}, "hono-ttl": {"5"}}}},
		// Hono's bag starts at the last "/?": an unescaped '/' stays in
		// the value instead of making "?content-type=application" a
		// tenant.
		{"bag unescaped slash", "t/?content-type=application/json",
			Upstream{Endpoint: Telemetry, Bag: url.Values{"content-type": {"application/json"}}}},
		// Netty's query decoder splits on ';' as well as '&'.
		{"bag semicolon", "t/?a=1;b=2", Upstream{Endpoint: Telemetry, Bag: url.Values{"a": {"1"}, "b": {"2"}}}},
		{"bag plus and escapes", "t/?seq+no=a+b%26c", Upstream{Endpoint: Telemetry, Bag: url.Values{"seq no": {"a b&c"}}}},
		{"bag name without value", "t/?flag", Upstream{Endpoint: Telemetry, Bag: url.Values{"flag": {""}}}},
		{"bag empty pairs", "t/?&&a=1&", Upstream{Endpoint: Telemetry, Bag: url.Values{"a": {"1"}}}},
		{"bag question mark in value", "t/?a=?b", Upstream{Endpoint: Telemetry, Bag: url.Values{"a": {"?b"}}}},

		// Command responses.
		{"response long", "command///res/" + reqID + "/200",
			Upstream{Endpoint: CommandResponse, ReqID: reqID, Status: "200"}},
		{"response short", "c///s/" + reqID + "/200",
			Upstream{Endpoint: CommandResponse, ReqID: reqID, Status: "200"}},
		{"response unauthenticated", "command/DEFAULT_TENANT/4711/res/" + reqID + "/404",
			Upstream{Endpoint: CommandResponse, Tenant: "DEFAULT_TENANT", Device: "4711", ReqID: reqID, Status: "404"}},
		{"response gateway", "c//4711/s/" + reqID + "/503",
			Upstream{Endpoint: CommandResponse, Device: "4711", ReqID: reqID, Status: "503"}},
		{"response status 299", "c///s/x/299", Upstream{Endpoint: CommandResponse, ReqID: "x", Status: "299"}},
		{"response status 400", "c///s/x/400", Upstream{Endpoint: CommandResponse, ReqID: "x", Status: "400"}},
		{"response status 599", "c///s/x/599", Upstream{Endpoint: CommandResponse, ReqID: "x", Status: "599"}},
		// Hono reads only the req-id and status positions, so the short
		// and long response segment go with either prefix.
		{"response command s", "command///s/x/200", Upstream{Endpoint: CommandResponse, ReqID: "x", Status: "200"}},
		{"response c res", "c///res/x/200", Upstream{Endpoint: CommandResponse, ReqID: "x", Status: "200"}},
		// Hono strips a bag from every topic (content-type, on-error).
		{"response bag", "c///s/x/200/?content-type=application%2Fjson&on-error=ignore",
			Upstream{Endpoint: CommandResponse, ReqID: "x", Status: "200", Bag: url.Values{"content-type": {"application/json"}, "on-error": {"ignore"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParseUpstream(tt.topic)
			if !ok || err != nil {
				t.Fatalf("ParseUpstream(%q) = ok %v, err %v; want ok, no error", tt.topic, ok, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseUpstream(%q) = %+v, want %+v", tt.topic, got, tt.want)
			}
		})
	}
}

func TestParseUpstreamMalformed(t *testing.T) {
	tests := []struct {
		name  string
		topic string
	}{
		{"tenant only", "t/DEFAULT_TENANT"},
		{"tenant only with bag", "telemetry/DEFAULT_TENANT/?a=1"},
		{"empty device", "t/DEFAULT_TENANT/"},
		{"empty tenant and device", "t//"},
		{"event empty tenant and device", "e//"},
		{"four segments", "t/a/b/c"},
		{"trailing slash after device", "event/a/b/"},
		{"extra segment before bag", "event/a/b/c/?x=1"},
		{"bag bad escape", "t/?content-type=%zz"},
		{"bag truncated escape", "e/?a=%4"},
		{"bag bad escape in name", "t/?%g=1"},

		{"response req", "command///req/" + reqID + "/200"},
		{"response q", "c///q/" + reqID + "/200"},
		{"response other segment", "command///foo/x/200"},
		{"response too short", "command///res/" + reqID},
		{"response five segments", "c///s/200"},
		{"response empty req-id", "command///res//200"},
		{"response empty status", "command///res/" + reqID + "/"},
		{"response status not a number", "c///s/x/ok"},
		{"response status 3xx", "c///s/x/302"},
		{"response status 1xx", "c///s/x/199"},
		{"response status 600", "c///s/x/600"},
		{"response status negative", "c///s/x/-200"},
		{"response status hex", "c///s/x/0xc8"},
		{"response extra segment", "command///res/x/200/more"},
		{"response trailing slash", "command///res/x/200/"},
		{"response bad bag", "c///s/x/200/?a=%zz"},
		{"command alone", "command"},
		{"c alone", "c"},
		{"command slash", "command/"},
		{"command filter as topic", "c///q/#"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParseUpstream(tt.topic)
			if !ok || !errors.Is(err, ErrTopic) {
				t.Errorf("ParseUpstream(%q) = %+v, ok %v, err %v; want ok and ErrTopic", tt.topic, got, ok, err)
			}
		})
	}
}

func TestParseUpstreamNotHono(t *testing.T) {
	for _, topic := range []string{
		"sensors/a",
		"tele",
		"telemetry2/x",
		"telemetry_x",
		"events",
		"commands///res/x/200",
		"control///res/x/200",
		"T",
		"Telemetry",
		"E/a/b",
		"cc///s/x/200",
		"t?content-type=text%2Fplain",
		"/t",
		"/telemetry/a/b",
		"",
		"/",
		"#",
		"+/a/b",
		"$hono/telemetry/4711",
		"command_response/t/r",
	} {
		t.Run(topic, func(t *testing.T) {
			got, ok, err := ParseUpstream(topic)
			if ok || err != nil || !reflect.DeepEqual(got, Upstream{}) {
				t.Errorf("ParseUpstream(%q) = %+v, ok %v, err %v; want zero, not ok, no error", topic, got, ok, err)
			}
		})
	}
}

func TestParseCommandFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		want   CommandFilter
	}{
		{"device long", "command///req/#", CommandFilter{}},
		{"device short", "c///q/#", CommandFilter{Short: true}},
		{"gateway all devices", "command//+/req/#", CommandFilter{Device: "+"}},
		{"gateway all devices short", "c//+/q/#", CommandFilter{Short: true, Device: "+"}},
		{"gateway all devices with tenant", "c/DEFAULT_TENANT/+/q/#", CommandFilter{Short: true, Tenant: "DEFAULT_TENANT", Device: "+"}},
		{"tenant and device", "command/t/d/req/#", CommandFilter{Tenant: "t", Device: "d"}},
		{"tenant only", "command/DEFAULT_TENANT//req/#", CommandFilter{Tenant: "DEFAULT_TENANT"}},
		{"device only", "c//4711/q/#", CommandFilter{Short: true, Device: "4711"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParseCommandFilter(tt.filter)
			if !ok || err != nil {
				t.Fatalf("ParseCommandFilter(%q) = ok %v, err %v; want ok, no error", tt.filter, ok, err)
			}
			if got != tt.want {
				t.Errorf("ParseCommandFilter(%q) = %+v, want %+v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestParseCommandFilterMalformed(t *testing.T) {
	tests := []struct {
		name   string
		filter string
	}{
		{"command alone", "command"},
		{"c alone", "c"},
		{"no hash", "command///req"},
		{"plus instead of hash", "command///req/+"},
		{"hash then more", "command///req/#/x"},
		{"six segments", "command/t/d/x/req/#"},
		{"three segments", "c/q/#"},
		{"res instead of req", "command///res/#"},
		{"s instead of q", "c///s/#"},
		// Hono takes req and q after either prefix; CommandFilter has
		// one Short flag for both segments and could not echo the style.
		{"mixed command q", "command///q/#"},
		{"mixed c req", "c///req/#"},
		{"tenant plus", "command/+//req/#"},
		{"tenant plus with device", "c/+/+/q/#"},
		{"tenant hash", "command/#//req/#"},
		{"tenant partial wildcard", "command/t+//req/#"},
		{"device hash", "command/t/#/req/#"},
		{"device partial plus", "command//a+/req/#"},
		{"device partial hash", "c//a#/q/#"},
		{"trailing slash", "c///q/#/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParseCommandFilter(tt.filter)
			if !ok || !errors.Is(err, ErrTopic) {
				t.Errorf("ParseCommandFilter(%q) = %+v, ok %v, err %v; want ok and ErrTopic", tt.filter, got, ok, err)
			}
		})
	}
}

func TestParseCommandFilterNotHono(t *testing.T) {
	for _, filter := range []string{"#", "+/+/+/req/#", "sensors/#", "commands///req/#", "C///q/#", "", "/c///q/#", "$hono/#", "error///#", "e///#"} {
		t.Run(filter, func(t *testing.T) {
			got, ok, err := ParseCommandFilter(filter)
			if ok || err != nil || got != (CommandFilter{}) {
				t.Errorf("ParseCommandFilter(%q) = %+v, ok %v, err %v; want zero, not ok, no error", filter, got, ok, err)
			}
		})
	}
}

func TestCommandTopic(t *testing.T) {
	tests := []struct {
		name                   string
		filter                 string
		target, reqID, command string
		want                   string
	}{
		{"request short", "c///q/#", "", reqID, "setBrightness", "c///q/" + reqID + "/setBrightness"},
		{"one-way short", "c///q/#", "", "", "setBrightness", "c///q//setBrightness"},
		{"request long", "command///req/#", "", "r1", "setBrightness", "command///req/r1/setBrightness"},
		{"one-way long", "command///req/#", "", "", "reboot", "command///req//reboot"},
		{"tenant kept", "command/DEFAULT_TENANT//req/#", "", reqID, "setBrightness", "command/DEFAULT_TENANT//req/" + reqID + "/setBrightness"},
		{"tenant one-way", "command/DEFAULT_TENANT//req/#", "", "", "setBrightness", "command/DEFAULT_TENANT//req//setBrightness"},
		{"unauthenticated", "c/DEFAULT_TENANT/4711/q/#", "", reqID, "setBrightness", "c/DEFAULT_TENANT/4711/q/" + reqID + "/setBrightness"},
		{"gateway plus fills device", "c/DEFAULT_TENANT/+/q/#", "4711", reqID, "setBrightness", "c/DEFAULT_TENANT/4711/q/" + reqID + "/setBrightness"},
		{"gateway plus one-way", "command//+/req/#", "4712", "", "setBrightness", "command//4712/req//setBrightness"},
		{"gateway plus for the gateway itself", "command//+/req/#", "", "r1", "setBrightness", "command///req/r1/setBrightness"},
		{"gateway one device", "c//4711/q/#", "4711", "", "setBrightness", "c//4711/q//setBrightness"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok, err := ParseCommandFilter(tt.filter)
			if !ok || err != nil {
				t.Fatalf("ParseCommandFilter(%q) = ok %v, err %v", tt.filter, ok, err)
			}
			if got := f.CommandTopic(tt.target, tt.reqID, tt.command); got != tt.want {
				t.Errorf("%+v.CommandTopic(%q, %q, %q) = %q, want %q", f, tt.target, tt.reqID, tt.command, got, tt.want)
			}
		})
	}
}

func TestParseNorthbound(t *testing.T) {
	tests := []struct {
		addr string
		want Northbound
	}{
		{"telemetry/DEFAULT_TENANT", Northbound{Endpoint: Telemetry, Tenant: "DEFAULT_TENANT"}},
		{"event/DEFAULT_TENANT", Northbound{Endpoint: Event, Tenant: "DEFAULT_TENANT"}},
		{"command/DEFAULT_TENANT", Northbound{Endpoint: Command, Tenant: "DEFAULT_TENANT"}},
		{"command/DEFAULT_TENANT/4711", Northbound{Endpoint: Command, Tenant: "DEFAULT_TENANT", Device: "4711"}},
		{"command_response/DEFAULT_TENANT/r-1", Northbound{Endpoint: CommandResponse, Tenant: "DEFAULT_TENANT", ReplyID: "r-1"}},
		// Reply ids may hold '/': "<device>/<id>" is what the device
		// prefix flag of a request id is for.
		{"command_response/DEFAULT_TENANT/4711/r-1", Northbound{Endpoint: CommandResponse, Tenant: "DEFAULT_TENANT", ReplyID: "4711/r-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, ok := ParseNorthbound(tt.addr)
			if !ok || got != tt.want {
				t.Errorf("ParseNorthbound(%q) = %+v, %v; want %+v, true", tt.addr, got, ok, tt.want)
			}
		})
	}
}

func TestParseNorthboundInvalid(t *testing.T) {
	for _, addr := range []string{
		"",
		"telemetry",
		"telemetry/",
		"telemetry/t/x",
		"event/t/",
		"event",
		"command",
		"command/",
		"command//4711",
		"command/t/",
		"command/t/d/x",
		"command_response",
		"command_response/t",
		"command_response/t/",
		"command_response//r",
		"command_internal/adapter-1",
		"Telemetry/t",
		"t/DEFAULT_TENANT",
		"/telemetry/t",
	} {
		t.Run(addr, func(t *testing.T) {
			if got, ok := ParseNorthbound(addr); ok || got != (Northbound{}) {
				t.Errorf("ParseNorthbound(%q) = %+v, %v; want zero, false", addr, got, ok)
			}
		})
	}
}

func TestEncodeReqID(t *testing.T) {
	tests := []struct {
		name                           string
		correlationID, replyID, device string
		messaging                      int
		want                           string
	}{
		{"device prefix", "corr-1", "dev1/abc", "dev1", MessagingAMQP, "106corr-1abc"},
		{"no device prefix", "corr-1", "app-reply", "dev1", MessagingAMQP, "006corr-1app-reply"},
		{"kafka", "corr-1", "dev1/abc", "dev1", MessagingKafka, "306corr-1abc"},
		{"kafka no prefix", "c", "r", "d", MessagingKafka, "201cr"},
		{"pubsub", "c", "d/r", "d", 2, "501cr"},
		{"messaging masked", "c", "r", "d", 4, "001cr"},
		{"device id as a prefix without slash", "c", "dev10", "dev1", MessagingAMQP, "001cdev10"},
		{"device without slash", "c", "dev1", "dev1", MessagingAMQP, "001cdev1"},
		{"only the device prefix", "c", "dev1/", "dev1", MessagingAMQP, "101c"},
		{"empty correlation id", "", "r", "d", MessagingAMQP, "000r"},
		{"empty device", "c", "/r", "", MessagingAMQP, "101cr"},
		// Hono's %02x: two lowercase hex digits.
		{"length 10 lowercase", "0123456789", "r", "d", MessagingAMQP, "00a0123456789r"},
		{"length 26 lowercase", "abcdefghijklmnopqrstuvwxyz", "r", "d", MessagingAMQP, "01aabcdefghijklmnopqrstuvwxyzr"},
		{"length 255", strings.Repeat("x", 255), "r", "d", MessagingAMQP, "0ff" + strings.Repeat("x", 255) + "r"},
		{"uuid reply id", "0", "4711/f8ab0b53-bd96-4d99-9d9c-56b868474a6a", "4711", MessagingAMQP, reqID},
		{"utf-8 counts bytes", "é", "r", "d", MessagingAMQP, "002ér"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeReqID(tt.correlationID, tt.replyID, tt.device, tt.messaging)
			if err != nil {
				t.Fatalf("EncodeReqID(%q, %q, %q, %d): %v", tt.correlationID, tt.replyID, tt.device, tt.messaging, err)
			}
			if got != tt.want {
				t.Errorf("EncodeReqID(%q, %q, %q, %d) = %q, want %q", tt.correlationID, tt.replyID, tt.device, tt.messaging, got, tt.want)
			}
		})
	}
}

func TestEncodeReqIDFails(t *testing.T) {
	tests := []struct {
		name                           string
		correlationID, replyID, device string
	}{
		{"correlation id of 256 bytes", strings.Repeat("x", 256), "r", "d"},
		{"correlation id of 300 bytes", strings.Repeat("x", 300), "d/r", "d"},
		{"empty reply id", "c", "", "d"},
		{"slash in correlation id", "a/b", "r", "d"},
		{"slash in reply id", "c", "app/r", "d"},
		{"slash after device prefix", "c", "d/a/b", "d"},
		{"plus", "c+1", "r", "d"},
		{"hash", "c", "r#1", "d"},
		{"nul", "c\x00", "r", "d"},
		{"invalid utf-8", "\xff", "r", "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := EncodeReqID(tt.correlationID, tt.replyID, tt.device, MessagingAMQP); err == nil {
				t.Errorf("EncodeReqID(%q, %q, %q) = %q, want an error", tt.correlationID, tt.replyID, tt.device, got)
			}
		})
	}
}

func TestDecodeReqID(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		device string
		want   ReqID
	}{
		{"device prefix", "106corr-1abc", "dev1", ReqID{CorrelationID: "corr-1", ReplyID: "dev1/abc"}},
		{"no device prefix", "006corr-1app-reply", "dev1", ReqID{CorrelationID: "corr-1", ReplyID: "app-reply"}},
		{"kafka", "306corr-1abc", "dev1", ReqID{CorrelationID: "corr-1", ReplyID: "dev1/abc", Messaging: MessagingKafka}},
		{"kafka no prefix", "201cr", "d", ReqID{CorrelationID: "c", ReplyID: "r", Messaging: MessagingKafka}},
		{"pubsub", "501cr", "d", ReqID{CorrelationID: "c", ReplyID: "d/r", Messaging: 2}},
		{"hono user guide example", reqID, "4711", ReqID{CorrelationID: "0", ReplyID: "4711/f8ab0b53-bd96-4d99-9d9c-56b868474a6a"}},
		{"empty correlation id", "000r", "d", ReqID{ReplyID: "r"}},
		{"empty reply with prefix", "101c", "dev1", ReqID{CorrelationID: "c", ReplyID: "dev1/"}},
		{"empty device", "101cr", "", ReqID{CorrelationID: "c", ReplyID: "/r"}},
		{"length 255", "0ff" + strings.Repeat("x", 255) + "r", "d", ReqID{CorrelationID: strings.Repeat("x", 255), ReplyID: "r"}},
		// Like Hono's Integer.parseInt(s, 16), upper case is read too.
		{"upper case length", "00A0123456789r", "d", ReqID{CorrelationID: "0123456789", ReplyID: "r"}},
		// Hono reads the flag as a decimal digit and masks it: 8 and 9
		// carry bit 0 only.
		{"flag 8", "801cr", "d", ReqID{CorrelationID: "c", ReplyID: "r"}},
		{"flag 9", "901cr", "d", ReqID{CorrelationID: "c", ReplyID: "d/r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeReqID(tt.id, tt.device)
			if err != nil {
				t.Fatalf("DecodeReqID(%q, %q): %v", tt.id, tt.device, err)
			}
			if got != tt.want {
				t.Errorf("DecodeReqID(%q, %q) = %+v, want %+v", tt.id, tt.device, got, tt.want)
			}
		})
	}
}

func TestDecodeReqIDMalformed(t *testing.T) {
	for _, id := range []string{
		"",
		"1",
		"10",
		"000",    // no correlation id, no reply id
		"003abc", // correlation id takes it all: no reply id
		"005abc", // shorter than its length says
		"0ffabc",
		"x01cr",
		"a01cr", // Hono's flag is decimal
		"f01cr",
		"-01cr",
		"0zzcr",
		"0-1cr",
		"0+1cr",
		"0 1cr",
		"\xff01cr",
		"é01cr",
	} {
		t.Run(id, func(t *testing.T) {
			if got, err := DecodeReqID(id, "d"); !errors.Is(err, ErrReqID) {
				t.Errorf("DecodeReqID(%q) = %+v, %v; want ErrReqID", id, got, err)
			}
		})
	}
}

func TestReqIDRoundTrip(t *testing.T) {
	tests := []struct {
		name                           string
		correlationID, replyID, device string
		messaging                      int
	}{
		{"prefix amqp", "corr-1", "dev1/abc", "dev1", MessagingAMQP},
		{"prefix kafka", "corr-1", "dev1/abc", "dev1", MessagingKafka},
		{"no prefix", "corr-1", "app", "dev1", MessagingAMQP},
		{"numeric correlation id", "42", "4711/x", "4711", MessagingAMQP},
		{"empty correlation id", "", "dev1/abc", "dev1", MessagingKafka},
		{"empty device", "c", "/r", "", MessagingAMQP},
		{"device prefix only", "c", "dev1/", "dev1", MessagingAMQP},
		{"255 bytes", strings.Repeat("c", 255), "dev1/r", "dev1", MessagingAMQP},
		{"unicode", "ключ", "устройство/ответ", "устройство", MessagingKafka},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := EncodeReqID(tt.correlationID, tt.replyID, tt.device, tt.messaging)
			if err != nil {
				t.Fatalf("EncodeReqID: %v", err)
			}
			got, err := DecodeReqID(id, tt.device)
			if err != nil {
				t.Fatalf("DecodeReqID(%q): %v", id, err)
			}
			want := ReqID{CorrelationID: tt.correlationID, ReplyID: tt.replyID, Messaging: tt.messaging}
			if got != want {
				t.Errorf("DecodeReqID(%q) = %+v, want %+v", id, got, want)
			}
		})
	}
}

// TestCommandExchange follows a command from its subscription to the
// device's response: the request id goes out in the command topic and
// comes back in the response topic, where it decodes to the correlation
// and reply id of the command.
func TestCommandExchange(t *testing.T) {
	tests := []struct {
		name, filter, target, device string
		response                     string // with %s for the request id
	}{
		{"device short", "c///q/#", "", "4711", "c///s/%s/200"},
		{"device long", "command///req/#", "", "4711", "command///res/%s/200"},
		{"unauthenticated", "command/DEFAULT_TENANT/4711/req/#", "", "4711", "command/DEFAULT_TENANT/4711/res/%s/200"},
		{"gateway", "c//+/q/#", "4712", "4712", "c//4712/s/%s/200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := EncodeReqID("corr-7", tt.device+"/reply-9", tt.device, MessagingAMQP)
			if err != nil {
				t.Fatal(err)
			}
			f, _, err := ParseCommandFilter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			topic := f.CommandTopic(tt.target, id, "setBrightness")
			segs := strings.Split(topic, "/")
			if len(segs) != 6 || segs[4] != id || segs[5] != "setBrightness" {
				t.Fatalf("command topic %q does not carry request id %q in segment 4", topic, id)
			}
			u, ok, err := ParseUpstream(strings.Replace(tt.response, "%s", segs[4], 1))
			if !ok || err != nil || u.Endpoint != CommandResponse {
				t.Fatalf("response: %+v, ok %v, err %v", u, ok, err)
			}
			r, err := DecodeReqID(u.ReqID, tt.device)
			if err != nil {
				t.Fatal(err)
			}
			if want := (ReqID{CorrelationID: "corr-7", ReplyID: tt.device + "/reply-9"}); r != want {
				t.Errorf("decoded %+v, want %+v", r, want)
			}
		})
	}
}

func TestEndpointString(t *testing.T) {
	for e, want := range map[Endpoint]string{
		Telemetry:       "telemetry",
		Event:           "event",
		Command:         "command",
		CommandResponse: "command_response",
		0:               "unknown",
		99:              "unknown",
	} {
		if got := e.String(); got != want {
			t.Errorf("Endpoint(%d).String() = %q, want %q", int(e), got, want)
		}
	}
}

func TestHubTopics(t *testing.T) {
	if got, want := HubTopic(Telemetry, "4711"), "$hono/telemetry/4711"; got != want {
		t.Errorf("HubTopic(Telemetry) = %q, want %q", got, want)
	}
	if got, want := HubTopic(Event, "4711"), "$hono/event/4711"; got != want {
		t.Errorf("HubTopic(Event) = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		topic  string
		ep     Endpoint
		device string
		ok     bool
	}{
		{"$hono/telemetry/4711", Telemetry, "4711", true},
		{"$hono/event/a/b", Event, "a/b", true},
		{"$hono/telemetry/", 0, "", false},
		{"$hono/command/4711", 0, "", false},
		{"telemetry/4711", 0, "", false},
	} {
		ep, device, ok := ParseHubTopic(tc.topic)
		if ok != tc.ok || (ok && (ep != tc.ep || device != tc.device)) {
			t.Errorf("ParseHubTopic(%q) = %v %q %v", tc.topic, ep, device, ok)
		}
	}
	if got, want := HubFilter(Telemetry), "$hono/telemetry/#"; got != want {
		t.Errorf("HubFilter(Telemetry) = %q, want %q", got, want)
	}
	if got, want := HubFilter(Event), "$hono/event/#"; got != want {
		t.Errorf("HubFilter(Event) = %q, want %q", got, want)
	}
	for topic, want := range map[string]bool{
		"$hono/telemetry/4711": true,
		"$hono/":               true,
		"$hono/#":              true,
		"$hono":                false,
		"$honorary/x":          false,
		"hono/telemetry/4711":  false,
		"telemetry":            false,
		"$SYS/broker":          false,
	} {
		if got := Reserved(topic); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", topic, got, want)
		}
	}
}

func TestParseErrorFilter(t *testing.T) {
	for _, tc := range []struct {
		filter string
		ok     bool
		err    bool
		want   ErrorFilter
		topic  string // ErrorTopic("dev-9", "t", "5", 503)
	}{
		{filter: "error///#", ok: true, want: ErrorFilter{}, topic: "error///t/5/503"},
		{filter: "e///#", ok: true, want: ErrorFilter{Short: true}, topic: "e///t/5/503"},
		{filter: "error/acme/dev-1/#", ok: true, want: ErrorFilter{Tenant: "acme", Device: "dev-1"}, topic: "error/acme/dev-1/t/5/503"},
		{filter: "error//+/#", ok: true, want: ErrorFilter{Device: "+"}, topic: "error//dev-9/t/5/503"},
		{filter: "error/#", ok: true, err: true},
		{filter: "error/+/d/#", ok: true, err: true},
		{filter: "e/x", ok: false},
		{filter: "sensors/#", ok: false},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			f, ok, err := ParseErrorFilter(tc.filter)
			if ok != tc.ok || (err != nil) != tc.err {
				t.Fatalf("ok %v err %v, want ok %v err %v", ok, err, tc.ok, tc.err)
			}
			if !ok || err != nil {
				return
			}
			if f != tc.want {
				t.Fatalf("filter %+v, want %+v", f, tc.want)
			}
			if got := f.ErrorTopic("dev-9", "t", "5", 503); got != tc.topic {
				t.Fatalf("error topic %s, want %s", got, tc.topic)
			}
		})
	}
	for topic, want := range map[string]string{"telemetry": "telemetry", "t/?x=1": "t", "e": "e", "command///res/x/200": "command-response", "c///s/x/200": "c-s"} {
		if got := ErrorEndpoint(topic); got != want {
			t.Errorf("ErrorEndpoint(%s) = %s, want %s", topic, got, want)
		}
	}
}

func TestNorthboundAddress(t *testing.T) {
	for addr, want := range map[string]bool{
		"telemetry/t": true, "telemetry": true, "event/t/x": true, "command_response/t": true, "control/t/d": true,
		"sensors/temp": false, "": false, "telemetryx/t": false, "$lwt": false,
	} {
		if got := NorthboundAddress(addr); got != want {
			t.Errorf("NorthboundAddress(%q) = %v, want %v", addr, got, want)
		}
	}
}
