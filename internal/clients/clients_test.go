package clients

import (
	"slices"
	"testing"
)

type fake struct {
	cs     []Client
	kicked []string
}

func (f *fake) Clients(tenant string) []Client {
	var out []Client
	for _, c := range f.cs {
		if tenant == "" || c.Tenant == tenant {
			out = append(out, c)
		}
	}
	return out
}

func (f *fake) Kick(tenant, id string) bool {
	for _, c := range f.cs {
		if c.Tenant == tenant && c.ClientID == id {
			f.kicked = append(f.kicked, id)
			return true
		}
	}
	return false
}

func TestAll(t *testing.T) {
	mqtt := &fake{cs: []Client{{Tenant: "b", ClientID: "x", Protocol: "mqtt"}, {Tenant: "a", ClientID: "y", Protocol: "mqtt"}}}
	amqp := &fake{cs: []Client{{Tenant: "a", ClientID: "y", Protocol: "amqp"}, {Tenant: "a", ClientID: "a", Protocol: "amqp-app"}}}
	all := All{mqtt, amqp}
	var got []string
	for _, c := range all.Clients("") {
		got = append(got, c.Tenant+"/"+c.ClientID+"/"+c.Protocol)
	}
	if want := []string{"a/a/amqp-app", "a/y/amqp", "a/y/mqtt", "b/x/mqtt"}; !slices.Equal(got, want) {
		t.Fatalf("Clients = %v, want %v", got, want)
	}
	if n := len(all.Clients("b")); n != 1 {
		t.Fatalf("tenant b: %d clients", n)
	}
	if !all.Kick("a", "y") || len(mqtt.kicked) != 1 || len(amqp.kicked) != 1 {
		t.Fatalf("Kick a/y: every front end's connection of the id should close: %v %v", mqtt.kicked, amqp.kicked)
	}
	if all.Kick("a", "nobody") {
		t.Fatal("Kick of an unknown client reported true")
	}
}
