package pebblestore_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/store"
	"github.com/ferry-iot/ferry/internal/store/pebblestore"
)

// The crash test re-executes the test binary as a child that writes through
// the store in sync mode and reports each acknowledged write on stdout. The
// parent kills it with SIGKILL at a random moment, reopens the directory
// and checks that every acknowledged write is there.

const (
	crashDirEnv   = "FERRY_PEBBLESTORE_CRASH_DIR"
	crashCycleEnv = "FERRY_PEBBLESTORE_CRASH_CYCLE"
	crashWriters  = 4
	crashCycles   = 10
)

func crashClient(cycle, w int) string { return fmt.Sprintf("c%d-w%d", cycle, w) }
func crashTopic(cycle, w int) string  { return fmt.Sprintf("r/%d/%d", cycle, w) }

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashSafety")
	}
	cycle, _ := strconv.Atoi(os.Getenv(crashCycleEnv))
	s, err := pebblestore.Open(dir, &pebblestore.Options{Durability: pebblestore.DurabilitySync})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ctx := context.Background()
	var outMu sync.Mutex
	ack := func(format string, args ...any) {
		// One write per line: a line is either wholly in the pipe or not.
		line := fmt.Appendf(nil, format+"\n", args...)
		outMu.Lock()
		_, _ = os.Stdout.Write(line)
		outMu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			id := crashClient(cycle, w)
			for i := 1; ; i++ {
				m := &store.Message{Topic: "q", Payload: strconv.AppendInt(nil, int64(i), 10), QoS: 1}
				if _, err := s.AppendQueue(ctx, "t", id, m); err != nil {
					ack("error %v", err)
					return
				}
				ack("q %d %d", w, i)
				if i%8 == 0 {
					// Delivered and acknowledged up to i-4: the queue
					// numbers from 1, so seq == payload.
					if err := s.TrimQueue(ctx, "t", id, uint64(i-4)); err != nil {
						ack("error %v", err)
						return
					}
					ack("t %d %d", w, i-4)
				}
				if i%4 == 0 {
					m := &store.Message{Topic: crashTopic(cycle, w), Payload: strconv.AppendInt(nil, int64(i), 10), Retain: true}
					if err := s.SetRetained(ctx, "t", m); err != nil {
						ack("error %v", err)
						return
					}
					ack("r %d %d", w, i)
				}
			}
		})
	}
	wg.Wait() // never returns: the parent kills us
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	// acked[cycle][w] = highest acknowledged queue append, trim and
	// retained set.
	type acks struct{ queue, trim, retained int }
	acked := make([][crashWriters]acks, crashCycles)
	checked := 0
	for cycle := range crashCycles {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashCycleEnv+"="+strconv.Itoa(cycle))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var kill *time.Timer
		for sc.Scan() {
			var kind string
			var w, i int
			if _, err := fmt.Sscanf(sc.Text(), "%s %d %d", &kind, &w, &i); err != nil {
				t.Fatalf("cycle %d: child said %q", cycle, sc.Text())
			}
			switch kind {
			case "q":
				acked[cycle][w].queue = i
			case "t":
				acked[cycle][w].trim = i
			case "r":
				acked[cycle][w].retained = i
			}
			if kill == nil {
				// The child is writing: kill it at a random moment from now.
				delay := time.Duration(rand.IntN(100)) * time.Millisecond
				kill = time.AfterFunc(delay, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("cycle %d: child ended with %v, not by SIGKILL", cycle, err)
		}

		s, err := pebblestore.Open(dir, nil)
		if err != nil {
			t.Fatalf("cycle %d: reopen after SIGKILL: %v", cycle, err)
		}
		// Every cycle so far, not just the last: recovery must not lose
		// older writes either.
		for c := 0; c <= cycle; c++ {
			for w := range crashWriters {
				a := acked[c][w]
				checked += checkCrashWriter(t, s, c, w, a.queue, a.trim, a.retained)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for _, c := range acked {
		for _, a := range c {
			total += a.queue
		}
	}
	t.Logf("%d cycles, %d acknowledged appends, %d checks after reopens", crashCycles, total, checked)
}

// checkCrashWriter checks writer w of cycle. Its queue must be the
// contiguous run first..last of the payloads it appended, with every
// acknowledged append that no trim may have removed (a trim is only ever
// attempted up to four below an acknowledged append) and none that an
// acknowledged trim removed; its retained value must be >= retained. It
// returns the number of acknowledged writes checked.
func checkCrashWriter(t *testing.T, s *pebblestore.Store, cycle, w, queue, trim, retained int) int {
	t.Helper()
	ctx := context.Background()
	id := crashClient(cycle, w)
	entries, err := s.PeekQueue(ctx, "t", id, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if queue == 0 && len(entries) == 0 {
		return 0
	}
	if len(entries) == 0 {
		t.Fatalf("cycle %d writer %d: queue empty after the crash, %d appends acknowledged", cycle, w, queue)
	}
	first, _ := strconv.Atoi(string(entries[0].Message.Payload))
	for i, e := range entries {
		want := first + i
		if got := string(e.Message.Payload); got != strconv.Itoa(want) || e.Seq != uint64(want) {
			t.Fatalf("cycle %d writer %d: entry %d is %q (seq %d), want %d", cycle, w, i, got, e.Seq, want)
		}
	}
	last := first + len(entries) - 1
	if first <= trim {
		t.Fatalf("cycle %d writer %d: queue starts at %d, trim up to %d was acknowledged", cycle, w, first, trim)
	}
	if last < queue || first > max(queue-3, 1) {
		t.Fatalf("cycle %d writer %d: queue holds %d..%d, append %d was acknowledged", cycle, w, first, last, queue)
	}
	info, err := s.QueueInfo(ctx, "t", id)
	if err != nil || info.Len != len(entries) || info.First != uint64(first) || info.Last != uint64(last) {
		t.Fatalf("cycle %d writer %d: QueueInfo = %+v, %v; entries %d..%d", cycle, w, info, err, first, last)
	}
	if retained > 0 {
		m, err := s.GetRetained(ctx, "t", crashTopic(cycle, w))
		if err != nil {
			t.Fatalf("cycle %d writer %d: retained message acknowledged at %d: %v", cycle, w, retained, err)
		}
		if got, _ := strconv.Atoi(string(m.Payload)); got < retained {
			t.Fatalf("cycle %d writer %d: retained %d, %d was acknowledged", cycle, w, got, retained)
		}
	}
	return queue + trim/8 + retained/4
}
