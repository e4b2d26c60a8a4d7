//go:build unix

package natsjs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe"
)

// restartBuffer collects the output of a process or a logger.
type restartBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *restartBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *restartBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// restartServerBinary finds a nats-server to run: TROUPE_TEST_NATS_SERVER, else
// /usr/sbin/nats-server, else the one on PATH. It skips the test without
// one, except in CI.
func restartServerBinary(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("TROUPE_TEST_NATS_SERVER"), "/usr/sbin/nats-server"}
	if p, err := exec.LookPath("nats-server"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no nats-server binary (CI needs it: install nats-server, or set TROUPE_TEST_NATS_SERVER)")
	}
	t.Skip("no nats-server binary; install nats-server or set TROUPE_TEST_NATS_SERVER")
	return ""
}

// restartServer is a nats-server process the test owns.
type restartServer struct {
	t        *testing.T
	bin      string
	storeDir string
	port     int
	out      *restartBuffer // output of every run, in order

	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs the server and waits until it accepts clients with JetStream.
func (s *restartServer) start() {
	t := s.t
	t.Helper()
	s.cmd = exec.Command(s.bin, "-js", "-sd", s.storeDir, "-a", "127.0.0.1", "-p", fmt.Sprint(s.port), "-n", "troupe-restart-test")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	exited := make(chan struct{})
	s.exited = exited
	cmd := s.cmd
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		nc, err := nats.Connect(s.url(), nats.Timeout(time.Second))
		if err == nil {
			js, jerr := jetstream.New(nc)
			if jerr == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, jerr = js.AccountInfo(ctx)
				cancel()
			}
			nc.Close()
			if jerr == nil {
				return
			}
			err = jerr
		}
		select {
		case <-exited:
			t.Fatalf("nats-server exited at start:\n%s", s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not ready after 20s (%v):\n%s", err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to end.
func (s *restartServer) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill nats-server: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.t.Fatal("nats-server still runs 10s after SIGKILL")
	}
}

func (s *restartServer) stop() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *restartServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// restartTick is the event of the restart test: its number in the flow.
type restartTick struct {
	N int `json:"n"`
}

// publishTimeout bounds each publish of the restart test.
const publishTimeout = 5 * time.Second

// TestServerRestart runs an app on a nats-server of its own, kills the
// server with SIGKILL twice during a flow of 5,000 events, and starts it
// again each time on the same port and store. The publisher repeats every
// publish that fails until one succeeds; the test then checks that every
// event a Publish confirmed was handled, that nothing is left unsettled or
// dead-lettered, and counts the deliveries an idempotent handler had to
// ignore.
//
// A publish that fails is not always a publish that was not stored: the
// client keeps a message sent during an outage and delivers it after the
// reconnect, even when the publish has given up waiting for its confirm.
// The repeated publish then stores a second copy under a new event id; the
// test counts those copies.
func TestServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills a nats-server process")
	}
	const total = 5000
	began := time.Now()
	srv := &restartServer{t: t, bin: restartServerBinary(t), storeDir: t.TempDir(), port: freePort(t), out: &restartBuffer{}}
	srv.start()
	t.Cleanup(srv.stop)

	logs := &restartBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	Tick := troupe.NewTopic[restartTick]("tick", 1)
	app := troupe.New(troupe.Config{Name: "restart", Broker: srv.url(), HTTPAddr: "off", Logger: log})
	app.Service("feed").Publishes(Tick)

	// The handler is idempotent: it keys its effect on the event id, and
	// counts the deliveries of an id it has seen as duplicates it ignored.
	var (
		mu         sync.Mutex
		deliveries = make(map[string]int)   // event id → deliveries
		idsOf      = make(map[int][]string) // tick number → ids handled
		duplicates int
	)
	troupe.Subscribe(app.Service("sink"), Tick, "record", func(_ context.Context, ev troupe.Event[restartTick]) error {
		mu.Lock()
		defer mu.Unlock()
		deliveries[ev.ID]++
		if deliveries[ev.ID] > 1 {
			duplicates++
			return nil
		}
		idsOf[ev.Data.N] = append(idsOf[ev.Data.N], ev.ID)
		return nil
	}, troupe.Lease(5*time.Second), troupe.MaxAttempts(100))

	ctx := t.Context()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := app.Stop(sctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	dump := func() string {
		return fmt.Sprintf("\n--- app log (tail):\n%s\n--- nats-server output (tail):\n%s", restartTail(logs.String(), 15), restartTail(srv.out.String(), 15))
	}

	// The publisher: one event at a time, each publish repeated until it
	// is confirmed. A publish that fails may still have been stored, so
	// one tick may arrive under two event ids.
	var (
		confirmed   atomic.Int64 // ticks 0..confirmed-1 are confirmed
		pubFailures atomic.Int64
		pubDone     = make(chan struct{})
		failMu      sync.Mutex
		firstFails  []string
	)
	pctx := app.Context(ctx)
	go func() {
		defer close(pubDone)
		for n := range total {
			for {
				c, cancel := context.WithTimeout(pctx, publishTimeout)
				err := troupe.Publish(c, Tick, restartTick{N: n})
				cancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				pubFailures.Add(1)
				failMu.Lock()
				if len(firstFails) < 3 {
					firstFails = append(firstFails, fmt.Sprintf("tick %d: %v", n, err))
				}
				failMu.Unlock()
				time.Sleep(50 * time.Millisecond) // the client is reconnecting
			}
			confirmed.Store(int64(n + 1))
		}
	}()

	// wait polls ready until it reports true or limit passes.
	wait := func(what string, limit time.Duration, ready func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !ready() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s (%d of %d confirmed)%s", limit, what, confirmed.Load(), total, dump())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Two outages: one shorter than a publish's timeout, so the publish in
	// flight waits for the server and succeeds, and one longer, so it fails
	// and is repeated.
	outages := []struct {
		after int           // confirmed publishes before the kill
		down  time.Duration // how long the server stays down
	}{
		{total / 3, 2 * time.Second},
		{2 * total / 3, publishTimeout + 2*time.Second},
	}
	var downtime time.Duration
	for _, o := range outages {
		wait(fmt.Sprintf("%d events to be confirmed", o.after), 90*time.Second, func() bool { return confirmed.Load() >= int64(o.after) })
		atKill := confirmed.Load()
		srv.kill()
		killedAt := time.Now()
		t.Logf("killed nats-server (SIGKILL) after %d confirmed publishes; restarting it in %s", atKill, o.down)
		time.Sleep(o.down)
		srv.start()
		down := time.Since(killedAt)
		downtime += down
		t.Logf("nats-server back on the same port and store after %s; %d confirmed so far", down.Round(time.Millisecond), confirmed.Load())
	}
	lastRestart := time.Now()

	wait("every publish to be confirmed", 90*time.Second, func() bool {
		select {
		case <-pubDone:
			return true
		default:
			return false
		}
	})
	if n := confirmed.Load(); n != total {
		t.Fatalf("the publisher stopped at %d of %d%s", n, total, dump())
	}
	t.Logf("all %d publishes confirmed %s after the start; %d publishes failed and were repeated, first: %v",
		total, time.Since(began).Round(time.Millisecond), pubFailures.Load(), firstFails)

	missing := func() []int {
		mu.Lock()
		defer mu.Unlock()
		var m []int
		for n := range total {
			if len(idsOf[n]) == 0 {
				m = append(m, n)
			}
		}
		return m
	}
	deadline := time.Now().Add(60 * time.Second)
	for m := missing(); len(m) > 0; m = missing() {
		if time.Now().After(deadline) {
			t.Fatalf("%d confirmed events never handled, first: %v%s", len(m), m[:min(len(m), 10)], dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("every confirmed event handled %s after the last restart", time.Since(lastRestart).Round(time.Millisecond))

	// Wait until the server holds nothing unsettled for the subscription,
	// so the redeliveries of acks lost in the outage are counted too.
	nc, err := nats.Connect(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.ConsumerInfo
	wait("the subscription to settle every delivery", 60*time.Second, func() bool {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cons, err := js.Consumer(c, "TROUPE_restart_EVENTS@tick", "sink@record")
		if err != nil {
			return false
		}
		info, err = cons.Info(c)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	})
	dls, err := app.DeadLetters(ctx, "sink.record", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) > 0 {
		t.Errorf("%d dead letters, want none; first: %+v", len(dls), dls[0])
	}

	mu.Lock()
	handledIDs := len(deliveries)
	extraCopies := 0
	for n := range total {
		extraCopies += len(idsOf[n]) - 1
	}
	dups := duplicates
	mu.Unlock()
	// Every event the stream stored, confirmed or not, reached the handler.
	stored := restartStreamMsgs(t, js)
	if stored != uint64(handledIDs) {
		t.Errorf("the stream holds %d events, the handler saw %d event ids", stored, handledIDs)
	}
	warnings := strings.Count(logs.String(), "level=WARN") + strings.Count(logs.String(), "level=ERROR")
	t.Logf("sent %d events (%d publishes failed during the outages and were repeated); handled all %d, "+
		"under %d event ids (%d copies stored by a publish that reported failure); "+
		"%d duplicate deliveries ignored by the idempotent handler; dead letters %d; "+
		"stream holds %d, consumer acked up to stream seq %d; app warnings %d; %d outages, %s in all; took %s",
		total, pubFailures.Load(), total, handledIDs, extraCopies, dups, len(dls),
		stored, info.AckFloor.Stream, warnings, len(outages), downtime.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

func restartStreamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "TROUPE_restart_EVENTS@tick")
	if err == nil {
		var info *jetstream.StreamInfo
		if info, err = s.Info(ctx); err == nil {
			return info.State.Msgs
		}
	}
	if !errors.Is(err, context.Canceled) {
		t.Logf("stream info: %v", err)
	}
	return 0
}

func restartTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
