// Package pgtest starts throwaway PostgreSQL servers for tests of Ferry's
// PostgreSQL backends: a fresh cluster per call, in a temporary directory,
// on a free port of 127.0.0.1, removed when the test ends. It needs the
// server binaries (initdb, pg_ctl, postgres) on PATH or where Debian's
// postgresql package puts them, /usr/lib/postgresql/<version>/bin.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-iot/ferry/internal/peertest"
)

// startTimeout bounds initdb and the server's start-up; both take about a
// second on an idle machine.
const startTimeout = time.Minute

// readyLine is what the postmaster logs once it accepts connections (with
// lc_messages=C, set below); PostgreSQL has logged it since 10.
const readyLine = "database system is ready to accept connections"

// account is the unprivileged user the server runs as when the test runs
// as root.
type account struct{ uid, gid uint32 }

// Start creates and starts a PostgreSQL cluster for t and returns the DSN
// of its "postgres" database, for the superuser "ferry" without password
// (trust authentication on 127.0.0.1 only). The server is stopped
// (immediate shutdown: nothing in it is worth a checkpoint) and its
// directory removed in t.Cleanup.
//
// Without the binaries, Start skips the test, or fails it when
// FERRY_REQUIRE_PEERS=1, as CI sets: a missing peer must not turn into a
// green run there. initdb and postgres refuse to run as root; as root,
// Start runs them as the postgres user, which Debian's package creates.
//
// The cluster trades durability for speed (fsync=off and friends): a
// crashed test machine loses it, which is fine for a throwaway.
func Start(t testing.TB) (dsn string) {
	t.Helper()
	bin, err := findBinDir()
	if err != nil {
		missing(t, err.Error())
	}
	var acct *account
	if os.Geteuid() == 0 {
		acct, err = lookupAccount("postgres")
		if err != nil {
			missing(t, fmt.Sprintf("running as root, and initdb and postgres refuse root: %v", err))
		}
	}

	// Not t.TempDir: its parent is private to this process's user, and
	// the server may run as another.
	dir, err := os.MkdirTemp("", "ferry-pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("pgtest: remove cluster: %v", err)
		}
	})
	if acct != nil {
		if err := os.Chown(dir, int(acct.uid), int(acct.gid)); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	data := filepath.Join(dir, "data")

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "ferry", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = sysProcAttr(acct)
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}

	// A free port can be taken between choosing and binding it; try a
	// few.
	for try := 1; ; try++ {
		srv, err := start(ctx, bin, dir, acct)
		if err == nil {
			t.Cleanup(func() { srv.stop(t) })
			return srv.dsn
		}
		if !errors.Is(err, errPortTaken) || try == 3 {
			t.Fatalf("pgtest: %v", err)
		}
	}
}

// Schema creates a new, empty schema in the database of dsn and returns
// a DSN whose connections have it first in their search_path, so that
// the tests sharing one cluster each get their own tables: creating a
// schema takes a millisecond, a database a quarter of a second and a
// cluster over a second.
func Schema(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Fatalf("pgtest: Schema needs a URL DSN, got %q", dsn)
	}
	name := fmt.Sprintf("test_%d", schemaSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

var schemaSeq atomic.Int64

func missing(t testing.TB, why string) {
	t.Helper()
	peertest.Missing(t, "no PostgreSQL to test with: "+why+"; apt-get install postgresql")
}

// findBinDir returns the directory holding initdb, pg_ctl and postgres:
// initdb's on PATH, else the newest /usr/lib/postgresql/<version>/bin.
func findBinDir() (string, error) {
	complete := func(dir string) bool {
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("initdb"); err == nil && complete(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, dir := range dirs {
		if complete(dir) {
			return dir, nil
		}
	}
	return "", errors.New("initdb, pg_ctl and postgres are neither on PATH nor in /usr/lib/postgresql/<version>/bin")
}

func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q", name, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q", name, u.Gid)
	}
	return &account{uint32(uid), uint32(gid)}, nil
}

var errPortTaken = errors.New("port taken")

// server is a running postmaster, a child of the test process.
type server struct {
	dsn    string
	bin    string
	data   string
	acct   *account
	cmd    *exec.Cmd
	exited chan struct{} // closed when the postmaster has exited
	log    *logWatch
}

// start runs the postmaster of the cluster in dir on a free port and waits
// until it has logged that it accepts connections, it has exited, or ctx
// ends.
func start(ctx context.Context, bin, dir string, acct *account) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	logFile, err := os.Create(filepath.Join(dir, fmt.Sprintf("postgres-%d.log", port)))
	if err != nil {
		return nil, err
	}
	lw := &logWatch{file: logFile, ready: make(chan struct{})}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+dir,
		"-c", "lc_messages=C",
		"-c", "logging_collector=off",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=50")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.SysProcAttr = sysProcAttr(acct)
	s := &server{
		dsn:    fmt.Sprintf("postgres://ferry@127.0.0.1:%d/postgres?sslmode=disable", port),
		bin:    bin,
		data:   data,
		acct:   acct,
		cmd:    cmd,
		exited: make(chan struct{}),
		log:    lw,
	}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal (sysProcAttr) is tied to the thread
		// that starts the process, not to the process: keep that thread
		// from exiting while the server runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		_ = logFile.Close()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	select {
	case <-lw.ready:
		return s, nil
	case <-s.exited:
		tail := lw.tail()
		if strings.Contains(tail, "could not bind") || strings.Contains(tail, "could not create lock file") {
			return nil, fmt.Errorf("%w: %d: postgres: %s", errPortTaken, port, tail)
		}
		return nil, fmt.Errorf("postgres exited while starting (%v):\n%s", cmd.ProcessState, tail)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("postgres not ready after %v:\n%s", startTimeout, lw.tail())
	}
}

// stop shuts the server down with pg_ctl, or kills it if that fails.
func (s *server) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pgctl := exec.CommandContext(ctx, filepath.Join(s.bin, "pg_ctl"), "stop", "-D", s.data, "-m", "immediate", "-w")
	pgctl.SysProcAttr = sysProcAttr(s.acct)
	if out, err := pgctl.CombinedOutput(); err != nil {
		t.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
		_ = s.cmd.Process.Kill()
	}
	select {
	case <-s.exited:
	case <-ctx.Done():
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logWatch copies the server's log to a file and signals ready when the
// server says it accepts connections: waiting on the server's own word
// needs no polling.
type logWatch struct {
	file *os.File

	mu      sync.Mutex
	partial []byte // the current, unfinished line
	last    []byte // the end of the log, for error messages
	ready   chan struct{}
	isReady bool
}

func (w *logWatch) Write(p []byte) (int, error) {
	_, _ = w.file.Write(p) // the log file is a convenience; never block the server on it
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = append(w.last, p...)
	if n := len(w.last); n > 4096 {
		w.last = append(w.last[:0], w.last[n-4096:]...)
	}
	if w.isReady {
		return len(p), nil
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		if bytes.Contains(w.partial[:i], []byte(readyLine)) {
			w.isReady = true
			w.partial = nil
			close(w.ready)
			break
		}
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *logWatch) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.last)
}
