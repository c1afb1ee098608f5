package auth

import "testing"

func TestACL(t *testing.T) {
	acl, err := NewACL([]Rule{
		{Tenant: "acme", Access: "subscribe", Topic: "alerts/#"},
		{Tenant: "acme", Topic: "devices/%d/#"},
		{Tenant: "acme", User: "admin-1", Topic: "#"},
		{Tenant: "acme", Topic: "devices/+/secret", Deny: true},
		{Tenant: "*", Access: "publish", Topic: "clients/%c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dev := Who{Tenant: "acme", Device: "d1", User: "u1", ClientID: "c1"}
	admin := Who{Tenant: "acme", Device: "d9", User: "admin-1", ClientID: "c9"}
	other := Who{Tenant: "globex", Device: "g", User: "g", ClientID: "gc"}
	norules := Who{Tenant: "initech", ClientID: "ic"}
	tests := []struct {
		name   string
		who    Who
		action Action
		topic  string
		want   bool
	}{
		{"own device tree", dev, Publish, "devices/d1/temp", true},
		{"other device tree", dev, Publish, "devices/d2/temp", false},
		{"subscribe own tree", dev, Subscribe, "devices/d1/#", true},
		{"subscribe beyond own tree", dev, Subscribe, "devices/#", false},
		{"alerts subscribe only", dev, Subscribe, "alerts/fire", true},
		{"alerts no publish", dev, Publish, "alerts/fire", false},
		{"admin everything", admin, Subscribe, "#", true},
		{"client pattern, any tenant", other, Publish, "clients/gc", true},
		{"client pattern, other client", other, Publish, "clients/c1", false},
		{"default deny with rules", other, Subscribe, "x", false},
		{"a \"*\" rule gives every tenant rules", norules, Publish, "anything", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := acl.Allowed(tt.who, tt.action, tt.topic, nil); got != tt.want {
				t.Errorf("Allowed = %v, want %v", got, tt.want)
			}
		})
	}
	empty, _ := NewACL(nil)
	if !empty.Allowed(norules, Publish, "x", nil) {
		t.Error("no rules at all must allow")
	}
	// A tenant's own rules come first.
	if !empty.Allowed(dev, Subscribe, "x/y", []Rule{{Tenant: "acme", Topic: "x/#"}}) ||
		empty.Allowed(dev, Subscribe, "z", []Rule{{Tenant: "acme", Topic: "x/#"}}) {
		t.Error("extra rules not applied")
	}
	if _, err := NewACL([]Rule{{Tenant: "a", Topic: "a/#/b"}}); err == nil {
		t.Error("invalid filter accepted")
	}
	if _, err := NewACL([]Rule{{Topic: "a"}}); err == nil {
		t.Error("rule without tenant accepted")
	}
}
