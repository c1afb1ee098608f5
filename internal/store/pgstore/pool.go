package pgstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// pool is a small connection pool over pgx.Conn.
//
// It stands in for pgxpool, which would be the natural choice but needs
// github.com/jackc/puddle/v2, a module the repository does not list yet
// (go.sum has no entry for it). The pool keeps what the store needs from
// pgxpool and nothing more: a bound on open connections, reuse of idle
// ones, a liveness ping before reusing a connection that sat idle (the
// server may have restarted), and the pgxpool DSN parameter
// pool_max_conns, so a DSN written for pgxpool works unchanged. Switching
// to pgxpool later only touches this file and Open.
type pool struct {
	cfg   *pgx.ConnConfig
	slots chan struct{} // one token per connection that is open or being opened

	mu     sync.Mutex
	idle   []idleConn // most recently released last
	closed bool
}

type idleConn struct {
	c     *pgx.Conn
	since time.Time
}

// pingAfter is how long a connection may sit idle before it is pinged on
// reuse; pgxpool's default.
const pingAfter = time.Second

var errPoolClosed = errors.New("store closed")

// newPool parses dsn (pgx's URL or keyword/value form) without
// connecting.
func newPool(dsn string) (*pool, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	size := max(4, runtime.NumCPU()) // pgxpool's default
	if s, ok := cfg.RuntimeParams["pool_max_conns"]; ok {
		// Not a server setting: sent in the startup message, the
		// server would reject it.
		delete(cfg.RuntimeParams, "pool_max_conns")
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("pool_max_conns %q is not a positive integer", s)
		}
		size = n
	}
	return &pool{cfg: cfg, slots: make(chan struct{}, size)}, nil
}

// acquire returns a connection for the caller's exclusive use until
// release. It waits for a free slot as long as ctx allows.
func (p *pool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.slots
			return nil, errPoolClosed
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		ic := p.idle[n-1]
		p.idle[n-1] = idleConn{}
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if ic.c.IsClosed() {
			continue
		}
		if time.Since(ic.since) > pingAfter {
			if err := ic.c.Ping(ctx); err != nil {
				closeConn(ic.c)
				if ctx.Err() != nil {
					<-p.slots
					return nil, ctx.Err()
				}
				continue
			}
		}
		return ic.c, nil
	}
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return c, nil
}

// release hands c back. A connection that is closed, or still inside a
// transaction (a panic or a failed rollback left it there), is not reused.
func (p *pool) release(c *pgx.Conn) {
	p.mu.Lock()
	reuse := !p.closed && !c.IsClosed() && c.PgConn().TxStatus() == 'I'
	if reuse {
		p.idle = append(p.idle, idleConn{c, time.Now()})
	}
	p.mu.Unlock()
	if !reuse {
		closeConn(c)
	}
	<-p.slots
}

// close closes the idle connections; connections in use are closed when
// they are released.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, ic := range idle {
		closeConn(ic.c)
	}
}

// closeConn closes c, giving the server a bounded time to hear the
// goodbye.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
