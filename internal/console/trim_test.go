package console

import (
	"fmt"
	"testing"
)

func TestTrim(t *testing.T) {
	var snap Snapshot
	total := map[string]float64{}
	for i := range 20 {
		name := fmt.Sprintf("t%02d", i)
		for _, p := range []string{"amqp", "mqtt"} {
			snap.Conns = append(snap.Conns, ConnCount{Tenant: name, Protocol: p, N: float64(i)})
			total[p] += float64(i)
		}
		snap.Tenants = append(snap.Tenants, TenantFigures{Tenant: name, PublishedPerSec: float64(i), Queued: 1,
			DropsPerSec: map[string]float64{"expired": 1}})
	}
	got := trim(snap, 4)

	kept := map[string]bool{}
	sum := map[string]float64{}
	for _, cc := range got.Conns {
		kept[cc.Tenant] = true
		sum[cc.Protocol] += cc.N
	}
	if len(kept) != 4 || !kept["t19"] || !kept["t18"] || !kept["t17"] || !kept[OthersTenant] {
		t.Fatalf("tenants of Conns %v, want t17-t19 and %s", kept, OthersTenant)
	}
	for p, n := range total {
		if sum[p] != n {
			t.Errorf("%s connections add up to %v, want %v", p, sum[p], n)
		}
	}
	if len(got.Tenants) != 4 || got.Tenants[0].Tenant != "t17" || got.Tenants[3].Tenant != OthersTenant {
		t.Fatalf("Tenants %+v", got.Tenants)
	}
	if o := got.Tenants[3]; o.Queued != 17 || o.DropsPerSec["expired"] != 17 || o.PublishedPerSec != 136 { // 0+...+16
		t.Fatalf("others %+v", o)
	}
	if small := trim(Snapshot{Conns: snap.Conns[:4], Tenants: snap.Tenants[:2]}, 4); len(small.Conns) != 4 || len(small.Tenants) != 2 {
		t.Fatalf("a small sample was trimmed: %+v", small)
	}
}
