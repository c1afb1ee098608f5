package analytics

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferry-iot/ferry/internal/analytics/query"
)

// Checkpoints keeps the queries applied through the API and the state of
// every query in a Pebble database of its own (data_dir/analytics), apart
// from the hub's store so that neither's compactions or format concern the
// other.
//
// Keys: "spec/<tenant>\x00<name>" holds a query document (JSON);
// "state/<tenant>\x00<name>" the SQL's hash, the shard count and each
// shard's engine snapshot.
type Checkpoints struct {
	db  *pebble.DB
	log *slog.Logger
}

// OpenCheckpoints opens (creating) the database in dir.
func OpenCheckpoints(dir string, log *slog.Logger) (*Checkpoints, error) {
	if log == nil {
		log = slog.Default()
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}})
	if err != nil {
		return nil, fmt.Errorf("analytics checkpoints in %s: %w", dir, err)
	}
	return &Checkpoints{db: db, log: log}, nil
}

// Close closes the database.
func (c *Checkpoints) Close() error { return c.db.Close() }

func specKey(tenant, name string) []byte  { return []byte("spec/" + tenant + "\x00" + name) }
func stateKey(tenant, name string) []byte { return []byte("state/" + tenant + "\x00" + name) }

// SaveSpec keeps a query applied through the API for the next start.
func (c *Checkpoints) SaveSpec(spec *query.Spec) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := c.db.Set(specKey(spec.Tenant, spec.Name), b, pebble.Sync); err != nil {
		return fmt.Errorf("storing query %s: %w", spec.Name, err)
	}
	return nil
}

// DeleteSpec forgets a stored query.
func (c *Checkpoints) DeleteSpec(tenant, name string) {
	if err := c.db.Delete(specKey(tenant, name), pebble.Sync); err != nil {
		c.log.Warn("stored analytics query not deleted", "tenant", tenant, "query", name, "err", err)
	}
}

// Specs returns every stored query.
func (c *Checkpoints) Specs() ([]*query.Spec, error) {
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: []byte("spec/"), UpperBound: []byte("spec0")})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*query.Spec
	for it.First(); it.Valid(); it.Next() {
		var s query.Spec
		if err := json.Unmarshal(it.Value(), &s); err != nil {
			c.log.Warn("stored analytics query unreadable: skipped", "key", string(it.Key()), "err", err)
			continue
		}
		if err := s.Validate(); err != nil {
			c.log.Warn("stored analytics query invalid: skipped", "query", s.Name, "err", err)
			continue
		}
		out = append(out, &s)
	}
	return out, it.Error()
}

func sqlHash(sql string) []byte {
	h := sha256.Sum256([]byte(sql))
	return h[:16]
}

// SaveState writes the snapshots of a query's shards.
func (c *Checkpoints) SaveState(tenant, name, sql string, shards [][]byte) error {
	b := append([]byte(nil), sqlHash(sql)...)
	b = binary.AppendUvarint(b, uint64(len(shards)))
	for _, s := range shards {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return c.db.Set(stateKey(tenant, name), b, pebble.Sync)
}

// LoadState returns the shards' snapshots of a query if the last
// checkpoint was of the same SQL and shard count; nil otherwise.
func (c *Checkpoints) LoadState(tenant, name, sql string, shards int) [][]byte {
	v, closer, err := c.db.Get(stateKey(tenant, name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		c.log.Warn("analytics checkpoint unreadable: starting empty", "tenant", tenant, "query", name, "err", err)
		return nil
	}
	defer closer.Close()
	b := append([]byte(nil), v...)
	if len(b) < 16 || string(b[:16]) != string(sqlHash(sql)) {
		c.log.Info("analytics checkpoint of another SQL: starting empty", "tenant", tenant, "query", name)
		return nil
	}
	b = b[16:]
	n, k := binary.Uvarint(b)
	if k <= 0 || int(n) != shards {
		c.log.Info("analytics checkpoint of another shard count: starting empty", "tenant", tenant, "query", name, "shards", n, "now", shards)
		return nil
	}
	b = b[k:]
	out := make([][]byte, shards)
	for i := range out {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			c.log.Warn("analytics checkpoint corrupt: starting empty", "tenant", tenant, "query", name)
			return nil
		}
		out[i] = b[k : k+int(l)]
		b = b[k+int(l):]
	}
	return out
}

// DeleteState forgets a query's state.
func (c *Checkpoints) DeleteState(tenant, name string) {
	if err := c.db.Delete(stateKey(tenant, name), pebble.Sync); err != nil {
		c.log.Warn("analytics checkpoint not deleted", "tenant", tenant, "query", name, "err", err)
	}
}

// pebbleLogger sends Pebble's log lines to slog: informational ones at
// debug level (Pebble reports every WAL and compaction).
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "analytics-pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "analytics-pebble")
}

// Fatalf is called on unrecoverable corruption; Pebble expects it not to
// return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "analytics-pebble")
	panic("pebble: " + msg)
}
