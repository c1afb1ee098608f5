package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferry-iot/ferry/internal/store"
)

// Store is a store.RegistryStore in a PostgreSQL database. Several Stores,
// in one process or on several nodes, may share the database: PostgreSQL
// keeps their transactions isolated. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// channel carries registry change notifications (notify.go).
	channel string
}

var _ store.RegistryStore = (*Store)(nil)

const (
	createTable = `CREATE TABLE IF NOT EXISTS ferry_registry (
	key   BYTEA PRIMARY KEY,
	value BYTEA NOT NULL
)`
	// schemaLock is the advisory lock key taken around createTable:
	// concurrent CREATE TABLE IF NOT EXISTS of one table can fail with a
	// unique violation in the system catalogs. "ferryreg" in ASCII.
	schemaLock = 0x6665727279726567

	sqlGet       = `SELECT value FROM ferry_registry WHERE key = $1`
	sqlPut       = `INSERT INTO ferry_registry (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`
	sqlDelete    = `DELETE FROM ferry_registry WHERE key = $1`
	sqlScanRange = `SELECT key, value FROM ferry_registry WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3`
	sqlScanFrom  = `SELECT key, value FROM ferry_registry WHERE key >= $1 ORDER BY key LIMIT $2`
)

// Retry policy of UpdateRegistry on serialization failures and deadlocks:
// registry writes are rare operator actions, so conflicts are rare and
// short; the bound turns a pathological livelock into an error rather than
// a hang.
const (
	maxAttempts = 20
	backoffMin  = time.Millisecond
	backoffMax  = 100 * time.Millisecond
)

// Open connects to the database at dsn, checks that it answers and creates
// the registry table if it is missing. ctx bounds only the opening; the
// Store's own connections outlive it.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: parse dsn: %w", err)
	}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s := &Store{pool: p}
	if err := s.ping(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	if err := s.createSchema(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("pgstore: create schema: %w", err)
	}
	var schema string
	if err := p.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		p.Close()
		return nil, fmt.Errorf("pgstore: current schema: %w", err)
	}
	s.channel = channelName(schema)
	return s, nil
}

func (s *Store) ping(ctx context.Context) error {
	return s.pool.Ping(ctx)
}

func (s *Store) createSchema(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, createTable)
		return err
	})
}

// Close closes the Store's connections; it must not be used afterwards.
// Transactions still running keep their connection until they end.
func (s *Store) Close() {
	s.pool.Close()
}

// ViewRegistry implements store.RegistryStore with a read-only REPEATABLE
// READ transaction: a consistent snapshot that never has to be retried.
func (s *Store) ViewRegistry(ctx context.Context, fn func(store.RegistryReader) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	return s.run(ctx, "view registry", opts, func(tx *registryTx) error { return fn(tx) })
}

// UpdateRegistry implements store.RegistryStore with a SERIALIZABLE
// transaction, run again (fn included) when PostgreSQL aborts it for a
// serialization failure or a deadlock; see the package documentation.
func (s *Store) UpdateRegistry(ctx context.Context, fn func(store.RegistryTx) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadWrite}
	return s.run(ctx, "update registry", opts, func(tx *registryTx) error { return fn(tx) })
}

// run runs fn in a transaction with opts, retrying on conflicts.
func (s *Store) run(ctx context.Context, op string, opts pgx.TxOptions, fn func(*registryTx) error) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pgstore: %s: %w", op, err)
		}
		retry, err := s.attempt(ctx, opts, fn)
		if !retry {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("pgstore: %s: giving up after %d attempts: %w", op, attempt, err)
		}
		if err := wait(ctx, backoff(attempt)); err != nil {
			return fmt.Errorf("pgstore: %s: %w", op, err)
		}
	}
}

// attempt runs fn once. retry says whether the failure err is one a new
// transaction may not meet: a conflict with a concurrent transaction, or
// a connection that failed before anything was sent.
func (s *Store) attempt(ctx context.Context, opts pgx.TxOptions, fn func(*registryTx) error) (retry bool, err error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("pgstore: acquire connection: %w", err)
	}
	defer c.Release()
	ptx, err := c.BeginTx(ctx, opts)
	if err != nil {
		return pgconn.SafeToRetry(err), fmt.Errorf("pgstore: begin: %w", err)
	}
	// Runs first among the deferred calls, also when fn panics; a no-op
	// after Commit. A connection whose rollback fails is not reused.
	defer rollback(ctx, ptx)
	tx := &registryTx{ctx: ctx, tx: ptx, write: opts.AccessMode == pgx.ReadWrite, channel: s.channel}
	ferr := fn(tx)
	tx.done = true
	if tx.conflict != nil {
		return true, fmt.Errorf("pgstore: %w", tx.conflict)
	}
	if ferr != nil {
		return false, ferr
	}
	if err := ptx.Commit(ctx); err != nil {
		return isConflict(err), fmt.Errorf("pgstore: commit: %w", err)
	}
	return false, nil
}

func rollback(ctx context.Context, tx pgx.Tx) {
	// Also when ctx is canceled: a rollback on a canceled context would
	// close the connection rather than roll back.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// isConflict reports a serialization failure or a deadlock: PostgreSQL
// aborted the transaction because of a concurrent one, and running it
// again may succeed.
func isConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// backoff is the wait before attempt+1: exponential from backoffMin, capped
// at backoffMax, with jitter so that the transactions that collided do not
// collide again in lockstep.
func backoff(attempt int) time.Duration {
	d := min(backoffMin<<min(attempt-1, 16), backoffMax)
	return d/2 + rand.N(d)
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
