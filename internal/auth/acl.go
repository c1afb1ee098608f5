package auth

import (
	"fmt"
	"strings"

	"github.com/ferry-iot/ferry/mqtt/topic"
)

// Action is what a client wants to do with a topic.
type Action int

// Actions.
const (
	Publish Action = 1 << iota
	Subscribe
)

// Rule is one access rule. Rules of a tenant are tried in order; the first
// whose device, user and topic match decides. A tenant with rules denies
// what none of them allows; a tenant without rules allows everything.
type Rule struct {
	// Tenant the rule applies to; "*" for every tenant.
	Tenant string `yaml:"tenant" json:"tenant,omitempty"`
	// Device and User (the auth-id) restrict the rule to one device or
	// login; empty or "*" for all.
	Device string `yaml:"device" json:"device,omitempty"`
	User   string `yaml:"user" json:"user,omitempty"`
	// Access is "publish", "subscribe" or "all" (the default).
	Access string `yaml:"access" json:"access,omitempty"`
	// Topic is a topic filter, with Mosquitto-style patterns replaced per
	// client: %c client id, %u auth-id, %d device id, %t tenant.
	Topic string `yaml:"topic" json:"topic"`
	// Deny makes a matching rule refuse instead of allow.
	Deny bool `yaml:"deny" json:"deny,omitempty"`
}

// Who is the client asking.
type Who struct {
	Tenant, Device, User, ClientID string
}

// ACL holds access rules.
type ACL struct {
	rules []Rule
}

// NewACL checks rules and returns them as an ACL.
func NewACL(rules []Rule) (*ACL, error) {
	for i, r := range rules {
		if r.Tenant == "" {
			return nil, fmt.Errorf("acl[%d]: tenant is required (\"*\" for all)", i)
		}
		switch r.Access {
		case "", "all", "publish", "subscribe":
		default:
			return nil, fmt.Errorf("acl[%d]: access %q is not publish, subscribe or all", i, r.Access)
		}
		probe := strings.NewReplacer("%c", "x", "%u", "x", "%d", "x", "%t", "x").Replace(r.Topic)
		if err := topic.ValidateFilter(probe); err != nil {
			return nil, fmt.Errorf("acl[%d]: topic: %w", i, err)
		}
	}
	return &ACL{rules: rules}, nil
}

// Allowed reports whether who may do action on t: a topic name for
// Publish, a topic filter for Subscribe (allowed only when a rule's filter
// covers all of it). extra rules (a tenant's own, from the registry) come
// before the configured ones.
func (a *ACL) Allowed(who Who, action Action, t string, extra []Rule) bool {
	matched := false
	for _, rules := range [][]Rule{extra, a.rulesOrNil()} {
		for _, r := range rules {
			if r.Tenant != "*" && r.Tenant != who.Tenant {
				continue
			}
			matched = true // the tenant has rules: default deny
			if !r.applies(who, action) {
				continue
			}
			filter := r.expand(who)
			if filter == "" {
				continue
			}
			var hit bool
			if action == Publish {
				hit = topic.Matches(filter, t)
			} else {
				hit = topic.Covers(filter, t)
			}
			if hit {
				return !r.Deny
			}
		}
	}
	return !matched
}

func (a *ACL) rulesOrNil() []Rule {
	if a == nil {
		return nil
	}
	return a.rules
}

func (r *Rule) applies(who Who, action Action) bool {
	if r.Device != "" && r.Device != "*" && r.Device != who.Device {
		return false
	}
	if r.User != "" && r.User != "*" && r.User != who.User {
		return false
	}
	switch r.Access {
	case "publish":
		return action == Publish
	case "subscribe":
		return action == Subscribe
	}
	return true
}

// expand fills the patterns; a pattern whose value is empty (an anonymous
// client has no %u) makes the rule match nothing.
func (r *Rule) expand(who Who) string {
	f := r.Topic
	for _, p := range []struct{ pat, val string }{{"%c", who.ClientID}, {"%u", who.User}, {"%d", who.Device}, {"%t", who.Tenant}} {
		if strings.Contains(f, p.pat) {
			if p.val == "" || strings.ContainsAny(p.val, "/+#") {
				return ""
			}
			f = strings.ReplaceAll(f, p.pat, p.val)
		}
	}
	return f
}
