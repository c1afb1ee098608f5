package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Registry change notifications: a registry transaction may carry a
// notification (registryTx.Notify, pg_notify), which PostgreSQL delivers
// to every listening session when, and only if, the transaction commits,
// in commit order. The channel is named after the table's schema, so that
// deployments kept apart by search_path in one database (notifications
// are per database) do not hear each other.

// maxPayload is PostgreSQL's limit on a notification's payload (8000
// bytes in the default build).
const maxPayload = 7999

// channelPrefix is the channel name before the schema.
const channelPrefix = "ferry_registry."

// channelName is the channel of the registry in schema: PostgreSQL's
// identifiers, channel names included, have at most 63 bytes, so a long
// schema name is replaced by its hash.
func channelName(schema string) string {
	if len(channelPrefix)+len(schema) <= 63 {
		return channelPrefix + schema
	}
	sum := sha256.Sum256([]byte(schema))
	return channelPrefix + hex.EncodeToString(sum[:16])
}

// Notify implements the registry's notifying transaction: payload is sent
// on the store's channel if the transaction commits.
func (t *registryTx) Notify(payload string) error {
	if !t.write {
		panic("pgstore: registry Notify outside a read-write transaction")
	}
	if t.done {
		return errTxDone
	}
	if len(payload) > maxPayload {
		return fmt.Errorf("pgstore: notification of %d bytes, PostgreSQL takes at most %d", len(payload), maxPayload)
	}
	if _, err := t.tx.Exec(t.ctx, `SELECT pg_notify($1, $2)`, t.channel, payload); err != nil {
		return t.fail("notify", err)
	}
	return nil
}

// RegistryListener receives the notifications of registry transactions,
// those of every Store sharing the database (its own included), on a
// connection of its own.
type RegistryListener struct {
	s       *Store
	channel string
	conn    *pgx.Conn
}

// ListenRegistry connects and listens on the store's channel: once it
// returns, every notification committed afterwards reaches Run.
func (s *Store) ListenRegistry(ctx context.Context) (*RegistryListener, error) {
	l := &RegistryListener{s: s, channel: s.channel}
	if err := l.connect(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *RegistryListener) connect(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("pgstore: listen: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("pgstore: listen: %w", err)
	}
	l.conn = conn
	return nil
}

// Run hands every notification's payload to deliver until ctx ends, then
// closes the connection. When the connection fails, Run connects again
// (backing off up to 5 s) and, once it listens again, calls lost with the
// failure: notifications committed in between were missed.
func (l *RegistryListener) Run(ctx context.Context, deliver func(payload string), lost func(error)) {
	defer l.Close()
	for {
		err := l.receive(ctx, deliver)
		l.Close()
		if ctx.Err() != nil || !l.reconnect(ctx) {
			return
		}
		lost(err)
	}
}

// receive delivers notifications until the connection fails or ctx ends.
func (l *RegistryListener) receive(ctx context.Context, deliver func(string)) error {
	for {
		n, err := l.conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		deliver(n.Payload)
	}
}

// reconnect connects and listens again; false when ctx ended first.
func (l *RegistryListener) reconnect(ctx context.Context) bool {
	backoff := 100 * time.Millisecond
	for {
		if wait(ctx, backoff) != nil {
			return false
		}
		if l.connect(ctx) == nil {
			return true
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Close closes the listener's connection; Run does when it returns.
func (l *RegistryListener) Close() {
	if l.conn != nil {
		l.conn.Close(context.Background())
		l.conn = nil
	}
}
