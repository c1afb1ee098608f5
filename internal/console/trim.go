package console

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// A node may hold thousands of tenants. Samples that are kept for ten
// minutes, or sent every second to a user of every tenant, hold the
// busiest tenants only and the rest added up, so that neither the history
// nor the stream grows with the number of tenants.

// maxTenantsKept bounds the tenants of a kept or sent sample, OthersTenant
// included.
const maxTenantsKept = 16

// OthersTenant stands for the tenants a sample leaves out, added up.
const OthersTenant = "(others)"

// trim returns snap with at most k tenants in Conns and in Tenants.
func trim(snap Snapshot, k int) Snapshot {
	snap.Conns = trimConns(snap.Conns, k)
	snap.Tenants = trimTenants(snap.Tenants, k)
	return snap
}

// trimConns keeps the k-1 tenants with the most connections, and adds up
// the others' per protocol, so that the totals stay right.
func trimConns(conns []ConnCount, k int) []ConnCount {
	total := map[string]float64{}
	for _, cc := range conns {
		total[cc.Tenant] += cc.N
	}
	if len(total) <= k {
		return conns
	}
	names := slices.SortedFunc(maps.Keys(total), func(a, b string) int {
		return cmp.Or(cmp.Compare(total[b], total[a]), strings.Compare(a, b))
	})
	kept := map[string]bool{}
	for _, n := range names[:k-1] {
		kept[n] = true
	}
	out := make([]ConnCount, 0, 2*k)
	others := map[string]float64{}
	for _, cc := range conns {
		if kept[cc.Tenant] {
			out = append(out, cc)
		} else {
			others[cc.Protocol] += cc.N
		}
	}
	for _, p := range slices.Sorted(maps.Keys(others)) {
		out = append(out, ConnCount{Tenant: OthersTenant, Protocol: p, N: others[p]})
	}
	return out
}

// trimTenants keeps the k-1 tenants that published the most (then the
// ones with the most sessions), and adds up the others.
func trimTenants(tenants []TenantFigures, k int) []TenantFigures {
	if len(tenants) <= k {
		return tenants
	}
	byLoad := slices.Clone(tenants)
	slices.SortFunc(byLoad, func(a, b TenantFigures) int {
		return cmp.Or(cmp.Compare(b.PublishedPerSec, a.PublishedPerSec), cmp.Compare(b.Sessions, a.Sessions),
			strings.Compare(a.Tenant, b.Tenant))
	})
	out := slices.Clone(byLoad[:k-1])
	slices.SortFunc(out, func(a, b TenantFigures) int { return strings.Compare(a.Tenant, b.Tenant) })
	others := TenantFigures{Tenant: OthersTenant, DropsPerSec: map[string]float64{}}
	for _, tf := range byLoad[k-1:] {
		others.PublishedPerSec += tf.PublishedPerSec
		others.SentPerSec += tf.SentPerSec
		for r, v := range tf.DropsPerSec {
			others.DropsPerSec[r] += v
		}
		others.Queued += tf.Queued
		others.Sessions += tf.Sessions
		others.Subscriptions += tf.Subscriptions
		others.RetainedMessages += tf.RetainedMessages
	}
	return append(out, others)
}
