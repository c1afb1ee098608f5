package registry

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-iot/ferry/internal/store/pgstore"
	"github.com/ferry-iot/ferry/internal/store/pgstore/pgtest"
)

// TestChangeNotifications: every committed change reaches the subscribers,
// once, after the commit; failed changes and cancelled subscriptions
// report nothing.
func TestChangeNotifications(t *testing.T) {
	r := newTestRegistry(t, time.Now())
	var got []Change
	cancel := r.Subscribe(SubscriberFunc(func(c Change) { got = append(got, c) }))
	steps := []func() error{
		func() error { _, _, err := r.CreateTenant(ctx, "t1", NewTenant()); return err },
		func() error { _, err := r.UpdateTenant(ctx, "t1", NewTenant(), ""); return err },
		func() error { _, _, err := r.CreateDevice(ctx, "t1", "d1", NewDevice()); return err },
		func() error { _, err := r.UpdateDevice(ctx, "t1", "d1", Device{Enabled: false}, ""); return err },
		func() error {
			_, err := r.SetCredentials(ctx, "t1", "d1", mustParseCreds(t, `[{"type":"hashed-password","auth-id":"a","secrets":[{"pwd-plain":"pw"}]}]`), "")
			return err
		},
		func() error { return r.DeleteDevice(ctx, "t1", "d1", "") },
		func() error { return r.DeleteAllDevices(ctx, "t1") },
		func() error { return r.DeleteTenant(ctx, "t1", "") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := []Change{
		{"t1", "", TenantCreated}, {"t1", "", TenantUpdated},
		{"t1", "d1", DeviceCreated}, {"t1", "d1", DeviceUpdated}, {"t1", "d1", CredentialsUpdated},
		{"t1", "d1", DeviceDeleted}, {"t1", "", AllDevicesDeleted}, {"t1", "", TenantDeleted},
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes\n got %v\nwant %v", got, want)
	}
	got = nil
	if err := r.DeleteTenant(ctx, "t1", ""); err == nil {
		t.Fatal("deleted a missing tenant")
	}
	if len(got) != 0 {
		t.Errorf("a failed change was announced: %v", got)
	}
	cancel()
	r.CreateTenant(ctx, "t2", NewTenant())
	if len(got) != 0 {
		t.Errorf("announced after cancel: %v", got)
	}
}

// TestPostgresChangeNotifications: two registries over one PostgreSQL
// database, as on two nodes: each hears the other's committed changes
// through LISTEN/NOTIFY, and not its own twice.
func TestPostgresChangeNotifications(t *testing.T) {
	dsn := pgtest.Schema(t, pgtest.Start(t))
	open := func() (*pgstore.Store, *Registry) {
		st, err := pgstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st, registryOver(t, st)
	}
	_, a := open()
	stB, b := open()
	changes := make(chan Change, 10)
	b.Subscribe(SubscriberFunc(func(c Change) { changes <- c }))
	l, err := stB.ListenRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(lctx, b.Notified, func(error) { b.NotificationsLost() })
	}()
	t.Cleanup(func() { stop(); <-done })

	next := func() Change {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no change notification within 10 s")
			return Change{}
		}
	}
	if _, _, err := a.CreateTenant(ctx, "t1", NewTenant()); err != nil {
		t.Fatal(err)
	}
	if c := next(); c != (Change{"t1", "", TenantCreated}) {
		t.Errorf("B heard %v", c)
	}
	// B's own change reaches its subscribers once, directly.
	if _, _, err := b.CreateDevice(ctx, "t1", "d1", NewDevice()); err != nil {
		t.Fatal(err)
	}
	if c := next(); c != (Change{"t1", "d1", DeviceCreated}) {
		t.Errorf("B heard %v", c)
	}
	// A rolled back change sends nothing: the next one heard is the next
	// committed one.
	if _, _, err := a.CreateDevice(ctx, "t1", "d1", NewDevice()); err == nil {
		t.Fatal("created d1 twice")
	}
	if _, err := a.UpdateDevice(ctx, "t1", "d1", Device{}, ""); err != nil {
		t.Fatal(err)
	}
	if c := next(); c != (Change{"t1", "d1", DeviceUpdated}) {
		t.Errorf("B heard %v", c)
	}
	select {
	case c := <-changes:
		t.Errorf("B heard a change more: %v", c)
	case <-time.After(100 * time.Millisecond):
	}

	// B's listening connection dies: once it listens again, B's
	// subscribers hear that changes may have been lost, and later
	// changes arrive again.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var killed int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminating the listener: %d, %v", killed, err)
	}
	if c := next(); c != (Change{Kind: ChangesLost}) {
		t.Errorf("B heard %v, want changes-lost", c)
	}
	if err := a.DeleteTenant(ctx, "t1", ""); err != nil {
		t.Fatal(err)
	}
	if c := next(); c != (Change{"t1", "", TenantDeleted}) {
		t.Errorf("B heard %v", c)
	}
}
