package troupe_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

// The crash test runs a real consumer process, kills it with SIGKILL while a
// handler is running, starts it again on the same data directory, and checks
// that every event is handled: nothing is lost with the process, because
// the embedded broker's store and the subscription's progress are on disk.

type crashJob struct {
	N int `json:"n"`
}

var crashTopic = troupe.NewTopic[crashJob]("crash_job", 1)

const crashEvents = 200

// TestCrashChild is the consumer process of TestKillNineLosesNothing. It
// does nothing unless started by that test.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("TROUPE_CRASH_CHILD")
	if dir == "" {
		t.Skip("run by TestKillNineLosesNothing")
	}
	blockAt, _ := strconv.Atoi(os.Getenv("TROUPE_CRASH_BLOCK_AT"))
	log, err := os.OpenFile(filepath.Join(dir, "handled.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	record := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(log, format+"\n", args...)
	}
	a := troupe.New(troupe.Config{Name: "crash", DataDir: filepath.Join(dir, "data"), HTTPAddr: "off", Logger: quietLogger()})
	svc := a.Service("worker").Publishes(crashTopic)
	troupe.Subscribe(svc, crashTopic, "work", func(ctx context.Context, ev troupe.Event[crashJob]) error {
		record("start %d %d", ev.Data.N, ev.Attempt)
		if ev.Data.N == blockAt {
			<-ctx.Done() // killed here, mid-handler
			return ctx.Err()
		}
		time.Sleep(2 * time.Millisecond) // some work, so several handlers overlap
		record("done %d", ev.Data.N)
		return nil
	}, troupe.Concurrency(4), troupe.Lease(2*time.Second), troupe.Deadline(time.Minute))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TROUPE_CRASH_PUBLISH") != "" {
		pctx := a.Context(ctx)
		batch := make([]crashJob, crashEvents)
		for i := range batch {
			batch[i] = crashJob{N: i}
		}
		if err := troupe.PublishBatch(pctx, crashTopic, batch); err != nil {
			t.Fatal(err)
		}
		record("published %d", crashEvents)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.Stop(sctx)
}

func TestKillNineLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	start := func(extra ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), append([]string{"TROUPE_CRASH_CHILD=" + dir}, extra...)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	logPath := filepath.Join(dir, "handled.log")
	blockAt := 60

	first := start("TROUPE_CRASH_PUBLISH=1", "TROUPE_CRASH_BLOCK_AT="+strconv.Itoa(blockAt))
	waitLog(t, logPath, fmt.Sprintf("blocked handler of event %d", blockAt), func(s logState) bool {
		return s.published && s.started[blockAt] > 0
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	before := readLog(t, logPath)
	inFlight := 0
	for n, c := range before.started {
		if c > before.done[n] {
			inFlight++
		}
	}
	t.Logf("killed the consumer with SIGKILL: %d of %d events done, %d handlers in flight", len(before.done), crashEvents, inFlight)
	if inFlight == 0 {
		t.Fatal("no handler was running at the kill; the test proves nothing")
	}

	second := start()
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	after := waitLog(t, logPath, "every event handled after the restart", func(s logState) bool {
		return len(s.done) == crashEvents
	})
	dups := 0
	for _, c := range after.done {
		dups += c - 1
	}
	if after.done[blockAt] == 0 {
		t.Errorf("event %d, whose handler was killed, was never handled after the restart", blockAt)
	}
	// The attempt number after a crash may start again at 1: the broker
	// persists delivery counts about ten times a second, and a kill can land
	// between two writes. Handlers must be idempotent either way.
	t.Logf("after restart: %d/%d events handled, %d handled twice (at-least-once), event %d handled again (attempt %d)",
		len(after.done), crashEvents, dups, blockAt, after.attempt[blockAt])
}

type logState struct {
	published bool
	started   map[int]int
	done      map[int]int
	attempt   map[int]int // highest attempt seen per event
}

func readLog(t *testing.T, path string) logState {
	t.Helper()
	s := logState{started: map[int]int{}, done: map[int]int{}, attempt: map[int]int{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return s
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue // a line cut by the kill
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "published":
			s.published = true
		case "start":
			s.started[n]++
			if len(fields) == 3 {
				a, _ := strconv.Atoi(fields[2])
				s.attempt[n] = max(s.attempt[n], a)
			}
		case "done":
			s.done[n]++
		}
	}
	return s
}

func waitLog(t *testing.T, path, what string, cond func(logState) bool) logState {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := readLog(t, path)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 60s for %s; log has %d started, %d done", what, len(s.started), len(s.done))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
