package amqp

import (
	"slices"
	"testing"

	goamqp "github.com/Azure/go-amqp"

	"github.com/ferry-iot/ferry/amqp/encoding"
	"github.com/ferry-iot/ferry/amqp/frame"
)

// TestTerminusFields checks that filters, capabilities, durability and
// link properties cross the wire both ways, with go-amqp and Ferry's
// client.
func TestTerminusFields(t *testing.T) {
	checkGoroutines(t)
	b := newTestBroker()
	reqs := make(chan *LinkRequest, 4)
	l := startListener(t, b, &ListenerOptions{Handler: HandlerFunc(func(req *LinkRequest) error {
		reqs <- req
		return b.HandleLink(req)
	})})
	ctx := testCtx(t)
	const selector = "apache.org:selector-filter:string"

	t.Run("go-amqp", func(t *testing.T) {
		c := goDial(t, l, nil)
		s, err := c.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.NewReceiver(ctx, "filtered", &goamqp.ReceiverOptions{
			Filters:            []goamqp.LinkFilter{goamqp.NewSelectorFilter("color = 'red'")},
			SourceCapabilities: []string{"queue"},
			SourceDurability:   goamqp.DurabilityUnsettledState,
			Properties:         map[string]any{"subscription-name": "s1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		req := <-reqs
		src := req.Attach.Source
		f, ok := src.Filter[selector].(encoding.Described)
		if !ok || f.Value != "color = 'red'" {
			t.Fatalf("filter %#v", src.Filter)
		}
		if !slices.Contains(src.Capabilities, "queue") || src.Durable != frame.DurabilityUnsettled {
			t.Fatalf("source %+v", src)
		}
		if req.Attach.Properties["subscription-name"] != "s1" {
			t.Fatalf("properties %v", req.Attach.Properties)
		}
	})
	t.Run("ferry", func(t *testing.T) {
		c := dialTest(t, l, nil)
		s := mustSession(t, c)
		filter := map[Symbol]any{selector: encoding.Described{Descriptor: uint64(0x468C00000004), Value: "a = 1"}}
		r, err := s.NewReceiver(ctx, "filtered", &ReceiverOptions{Filter: filter,
			SourceCapabilities: []Symbol{"topic"}, DesiredCapabilities: []Symbol{"ferry-cap"},
			SourceDurability: DurabilityConfiguration, SourceExpiryPolicy: ExpiryLinkDetach, SourceTimeout: 300})
		if err != nil {
			t.Fatal(err)
		}
		req := <-reqs
		if f := req.Attach.Source.Filter[selector].(encoding.Described); f.Value != "a = 1" || f.Descriptor != uint64(0x468C00000004) {
			t.Fatalf("filter %#v", f)
		}
		if src := req.Attach.Source; src.Durable != DurabilityConfiguration || src.ExpiryPolicy != ExpiryLinkDetach || src.Timeout != 300 {
			t.Fatalf("source durability %v, expiry %q, timeout %d", src.Durable, src.ExpiryPolicy, src.Timeout)
		}
		if !slices.Contains(r.RemoteAttach().OfferedCapabilities, "ferry-cap") {
			t.Fatalf("offered %v", r.RemoteAttach().OfferedCapabilities)
		}
	})
}
