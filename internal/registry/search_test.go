package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"*", "", true},
		{"*", "abc", true},
		{"a*", "abc", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*b*", "abc", true},
		{"*x*", "abc", false},
		{"a*c*e", "abcde", true},
		{"a*c*e", "abcdf", false},
		{"ä?", "äö", true},
		{"**a", "ba", true},
		{"abc", "abcd", false},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tt.pattern, tt.s, got)
		}
	}
}

func TestParseFilterAndSort(t *testing.T) {
	filters := []struct {
		in string
		ok bool
	}{
		{`{"field":"/enabled","value":true}`, true},
		{`{"field":"/ext/brand","op":"eq","value":"acme*"}`, true},
		{`{"field":"/ext/n","value":3}`, true},
		{`{"field":"/ext/n","value":null}`, true},
		{`{"field":"/a~1b/c~0d","value":1}`, true},
		{`{"field":"ext","value":1}`, false},
		{`{"field":"","value":1}`, false},
		{`{"field":"/a~2","value":1}`, false},
		{`{"field":"/a","op":"ne","value":1}`, false},
		{`{"field":"/a","value":[1]}`, false},
		{`{"field":"/a","value":{}}`, false},
		{`{"field":"/a","value":1,"x":2}`, false},
		{`{"field":"/a","value":1} 1`, false},
		{`not json`, false},
	}
	for _, tt := range filters {
		_, err := ParseFilter(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseFilter(%s) = %v; want ok=%v", tt.in, err, tt.ok)
		}
	}
	sorts := []struct {
		in string
		ok bool
	}{
		{`{"field":"/id"}`, true},
		{`{"field":"/ext/n","direction":"desc"}`, true},
		{`{"field":"/id","direction":"up"}`, false},
		{`{"field":"id"}`, false},
		{`{}`, false},
	}
	for _, tt := range sorts {
		_, err := ParseSort(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseSort(%s) = %v; want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func mustFilter(t *testing.T, s string) Filter {
	t.Helper()
	f, err := ParseFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustSort(t *testing.T, s string) Sort {
	t.Helper()
	o, err := ParseSort(s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestSearchDevices(t *testing.T) {
	r := newTestRegistry(t, time.Now())
	r.CreateTenant(ctx, "t", NewTenant())
	for i := range 10 {
		d := NewDevice()
		d.Ext = map[string]any{"brand": []string{"acme", "bolt"}[i%2], "n": i}
		d.Enabled = i != 3
		if i == 9 {
			d.Via = []string{"d-0"}
		}
		if i == 8 {
			d.MemberOf = []string{"grp"}
		}
		if _, _, err := r.CreateDevice(ctx, "t", fmt.Sprintf("d-%d", i), d); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(res SearchResult[DeviceWithID]) string {
		var s []string
		for _, d := range res.Result {
			s = append(s, d.ID)
		}
		return fmt.Sprintf("%d%v", res.Total, s)
	}
	yes, no := true, false
	tests := []struct {
		name  string
		q     Query
		isGW  *bool
		want  string
		error bool
	}{
		{"all", Query{}, nil, "10[d-0 d-1 d-2 d-3 d-4 d-5 d-6 d-7 d-8 d-9]", false},
		{"page", Query{PageSize: 3, PageOffset: 2}, nil, "10[d-2 d-3 d-4]", false},
		{"beyond", Query{PageOffset: 20}, nil, "10[]", false},
		{"brand", Query{Filters: []Filter{mustFilter(t, `{"field":"/ext/brand","value":"b*t"}`)}}, nil, "5[d-1 d-3 d-5 d-7 d-9]", false},
		{"two filters", Query{Filters: []Filter{mustFilter(t, `{"field":"/ext/brand","value":"bolt"}`), mustFilter(t, `{"field":"/enabled","value":false}`)}}, nil, "1[d-3]", false},
		{"number", Query{Filters: []Filter{mustFilter(t, `{"field":"/ext/n","value":4}`)}}, nil, "1[d-4]", false},
		{"id wildcard", Query{Filters: []Filter{mustFilter(t, `{"field":"/id","value":"d-?"}`)}, PageSize: 1}, nil, "10[d-0]", false},
		{"missing field", Query{Filters: []Filter{mustFilter(t, `{"field":"/ext/none","value":"x"}`)}}, nil, "0[]", false},
		{"sort desc", Query{Sort: []Sort{mustSort(t, `{"field":"/ext/n","direction":"desc"}`)}, PageSize: 3}, nil, "10[d-9 d-8 d-7]", false},
		{"sort two keys", Query{Sort: []Sort{mustSort(t, `{"field":"/ext/brand","direction":"desc"}`), mustSort(t, `{"field":"/ext/n"}`)}, PageSize: 2}, nil, "10[d-1 d-3]", false},
		{"gateways", Query{}, &yes, "2[d-0 d-8]", false},
		{"not gateways", Query{PageSize: 2}, &no, "8[d-1 d-2]", false},
		{"page size too big", Query{PageSize: 201}, nil, "", true},
		{"negative offset", Query{PageOffset: -1}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.SearchDevices(ctx, "t", tt.q, tt.isGW)
			if tt.error {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v; want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(res); got != tt.want {
				t.Fatalf("got %s; want %s", got, tt.want)
			}
		})
	}
	if _, err := r.SearchDevices(ctx, "none", Query{}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("search in missing tenant: %v", err)
	}
}

func TestSearchTenants(t *testing.T) {
	r := newTestRegistry(t, time.Now())
	for _, id := range []string{"b", "a", "c"} {
		tn := NewTenant()
		tn.Ext = map[string]any{"plan": map[string]string{"a": "gold", "b": "free", "c": "gold"}[id]}
		r.CreateTenant(ctx, id, tn)
	}
	res, err := r.SearchTenants(ctx, Query{Filters: []Filter{mustFilter(t, `{"field":"/ext/plan","value":"gold"}`)}})
	if err != nil || res.Total != 2 || res.Result[0].ID != "a" || res.Result[1].ID != "c" {
		t.Fatalf("SearchTenants = %+v, %v", res, err)
	}
	res, _ = r.SearchTenants(ctx, Query{Sort: []Sort{mustSort(t, `{"field":"/id","direction":"desc"}`)}})
	if res.Result[0].ID != "c" {
		t.Fatalf("sorted: %+v", res)
	}
	// Filters built in code, without ParseFilter, work too.
	res, err = r.SearchTenants(ctx, Query{Filters: []Filter{{Field: "/id", Value: "b"}}})
	if err != nil || res.Total != 1 {
		t.Fatalf("code-built filter: %+v %v", res, err)
	}
	if _, err := r.SearchTenants(ctx, Query{Filters: []Filter{{Field: "id"}}}); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
}

func TestSplitUsername(t *testing.T) {
	tests := []struct {
		in, authID, tenant string
		ok                 bool
	}{
		{"sensor1@DEFAULT_TENANT", "sensor1", "DEFAULT_TENANT", true},
		{"me@example.com@acme", "me@example.com", "acme", true},
		{"sensor1", "", "", false},
		{"@acme", "", "", false},
		{"sensor1@", "", "", false},
	}
	for _, tt := range tests {
		a, tn, ok := SplitUsername(tt.in)
		if a != tt.authID || tn != tt.tenant || ok != tt.ok {
			t.Errorf("SplitUsername(%q) = %q, %q, %v", tt.in, a, tn, ok)
		}
	}
}

func TestSearchResultRoundTrip(t *testing.T) {
	in := SearchResult[DeviceWithID]{Total: 1, Result: []DeviceWithID{{ID: "d1", Device: Device{Enabled: false, Via: []string{"gw"}}}}}
	b, _ := json.Marshal(in)
	var out SearchResult[DeviceWithID]
	if err := json.Unmarshal(b, &out); err != nil || out.Result[0].ID != "d1" || out.Result[0].Enabled || out.Result[0].Via[0] != "gw" {
		t.Fatalf("devices: %+v, %v (from %s)", out, err, b)
	}
	var tn TenantWithID
	if err := json.Unmarshal([]byte(`{"id":"t1","alias":"a"}`), &tn); err != nil || tn.ID != "t1" || tn.Alias != "a" || !tn.Enabled {
		t.Fatalf("tenant: %+v, %v", tn, err)
	}
	if err := json.Unmarshal([]byte(`{"id":1}`), &tn); err == nil {
		t.Fatal("numeric id accepted")
	}
}
