package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

// testTimeout bounds each test as a whole; every wait in it ends by then.
const testTimeout = 2 * time.Minute

// scriptTimeout is what each foreign client is told to give up after, well
// within testTimeout, so that a hung client says so itself.
const scriptTimeout = 45 * time.Second

// scriptTimeoutArg is scriptTimeout in seconds, as the scripts take it.
func scriptTimeoutArg() string { return strconv.Itoa(int(scriptTimeout / time.Second)) }

// unavailable skips the test because something it needs is missing, with
// how to install it, or fails it when the CI environment variable is set:
// CI must have everything.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI must provide it)", msg)
	}
	t.Skip(msg)
}

// uniqueName returns an app name that no other test run uses, so that runs
// sharing a broker never see each other's exchanges, queues or streams.
func uniqueName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "interop_" + prefix + "_" + hex.EncodeToString(b)
}

// testLogger writes the app's warnings into the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startApp starts a and registers its Stop as a cleanup. Cleanups run last
// first, so those registered before startApp (deleting the broker objects)
// run after the app stopped.
func startApp(t *testing.T, a *troupe.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatalf("start app: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("stop app: %v", err)
		}
	})
}

// The event data the tests send both ways: nested objects, a list, a
// number and text beyond ASCII, to see that no client mangles JSON.
type signup struct {
	UserID  int      `json:"user_id"`
	Email   string   `json:"email"`
	Name    string   `json:"name"`
	Tags    []string `json:"tags"`
	Address address  `json:"address"`
}

type address struct {
	City string `json:"city"`
	Zip  string `json:"zip"`
}

var sampleSignup = signup{
	UserID:  4711,
	Email:   "zoe@example.com",
	Name:    "Zoë Ångström – 5 €",
	Tags:    []string{"beta", "newsletter"},
	Address: address{City: "Köln", Zip: "50667"},
}

type orderPlaced struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

type invoiceIssued struct {
	OrderID  string   `json:"order_id"`
	Customer signup   `json:"customer"`
	Lines    []string `json:"lines"`
	Total    int      `json:"total"`
}

// The trace context the foreign publishers send, in W3C form.
const sampleTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// mustJSON encodes v or fails the test.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sentEvent is what a foreign publisher prints once the broker has its
// event: the id and time it made up.
type sentEvent struct {
	ID   string `json:"id"`
	Time string `json:"time"`
}

// checkReceived compares what a troupe handler got with what a foreign
// client published: every attribute, and the data.
func checkReceived(t *testing.T, ev troupe.Event[signup], sent sentEvent, source, typ, correlation, subscription string) {
	t.Helper()
	sentTime, err := time.Parse(time.RFC3339Nano, sent.Time)
	if err != nil {
		t.Fatalf("the client's own ce-time %q is not RFC 3339: %v", sent.Time, err)
	}
	for _, c := range []struct{ what, got, want string }{
		{"id", ev.ID, sent.ID},
		{"source", ev.Source, source},
		{"type", ev.Type, typ},
		{"correlation id", ev.CorrelationID, correlation},
		{"causation id (none: the event came from outside)", ev.CausationID, ""},
		{"trace parent", ev.TraceParent, sampleTraceParent},
		{"subscription", ev.Subscription, subscription},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if !ev.Time.Equal(sentTime) {
		t.Errorf("time = %s, want %s (sent as %q)", ev.Time.Format(time.RFC3339Nano), sentTime.Format(time.RFC3339Nano), sent.Time)
	}
	if ev.Attempt != 1 || ev.Replays != 0 {
		t.Errorf("attempt %d, replays %d; want 1, 0", ev.Attempt, ev.Replays)
	}
	if !reflect.DeepEqual(ev.Data, sampleSignup) {
		t.Errorf("data = %+v\nwant   %+v", ev.Data, sampleSignup)
	}
}

// receiveID waits for the event with the given id on got, skipping others
// (left over from an earlier subtest that failed).
func receiveID[T any](t *testing.T, ctx context.Context, got <-chan troupe.Event[T], id string) troupe.Event[T] {
	t.Helper()
	for {
		select {
		case ev := <-got:
			if ev.ID == id {
				return ev
			}
			t.Logf("skipping event %s (waiting for %s)", ev.ID, id)
		case <-ctx.Done():
			t.Fatalf("the troupe handler never received event %s: %v", id, ctx.Err())
		}
	}
}

// receive waits for one value on ch until ctx ends.
func receive[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("%s: %v", what, ctx.Err())
		panic("unreachable")
	}
}

// wantPublished is what a foreign consumer must see of the event troupe
// published.
type wantPublished struct {
	env         troupe.Envelope // as troupe's own subscriber received it
	source      string
	correlation string
	causation   string // id of the event whose handler published it
	data        invoiceIssued
}

// checkPublished checks the CloudEvents headers and body a foreign client
// read from the broker against what troupe published. contentType names
// the header that carries the data's media type: ce-datacontenttype on
// NATS, as its protocol binding says, content-type on RabbitMQ.
func checkPublished(t *testing.T, headers map[string]string, body string, w wantPublished, contentType string) {
	t.Helper()
	for k := range headers {
		if k != strings.ToLower(k) {
			t.Errorf("header %q reached the client with upper case letters; troupe writes names in lower case", k)
		}
	}
	for _, c := range []struct{ header, want string }{
		{"ce-specversion", "1.0"},
		{"ce-id", w.env.ID},
		{"ce-source", w.source},
		{"ce-type", w.env.Type},
		{"ce-correlationid", w.correlation},
		{"ce-causationid", w.causation},
		{contentType, "application/json"},
	} {
		got, ok := headers[c.header]
		switch {
		case !ok:
			t.Errorf("header %s missing; got %v", c.header, headers)
		case got != c.want:
			t.Errorf("header %s = %q, want %q", c.header, got, c.want)
		}
	}
	if w.env.ID == "" || w.causation == "" || w.correlation == "" {
		t.Errorf("expected values are empty: %+v", w)
	}
	ts, ok := headers["ce-time"]
	if !ok {
		t.Errorf("header ce-time missing")
	} else if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("ce-time %q is not RFC 3339: %v", ts, err)
	} else {
		if !tm.Equal(w.env.Time) {
			t.Errorf("ce-time %s, troupe's subscriber saw %s", tm, w.env.Time)
		}
		if d := time.Since(tm); d < -time.Minute || d > 5*time.Minute {
			t.Errorf("ce-time %s is %s away from now", ts, d)
		}
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var got invoiceIssued
	if err := dec.Decode(&got); err != nil {
		t.Errorf("body %q is not the event's JSON: %v", body, err)
	} else if !reflect.DeepEqual(got, w.data) {
		t.Errorf("data = %+v\nwant   %+v", got, w.data)
	}
}

// proc is a foreign client running as a child process. Its stdout is read
// line by line; its stderr is kept for failure messages.
type proc struct {
	name   string
	cmd    *exec.Cmd
	lines  chan string
	stderr syncBuffer
	done   chan struct{}
	err    error // how the process ended, set before done is closed
}

// startProc runs name with args, in dir when it is not empty, with extra
// environment variables. The process is killed when ctx ends or the test
// finishes.
func startProc(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	p := &proc{name: filepath.Base(name) + " " + firstArg(args), cmd: cmd, lines: make(chan string, 64), done: make(chan struct{})}
	cmd.Stderr = &p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done // bounded by WaitDelay after the kill
	})
	return p
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// line returns the next line the process prints, failing the test when it
// exits first or ctx ends.
func (p *proc) line(t *testing.T, ctx context.Context) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if ok {
			return l
		}
		<-p.done
		t.Fatalf("%s ended without printing what was expected (%v)\nstderr:\n%s", p.name, p.err, p.stderr.String())
	case <-ctx.Done():
		t.Fatalf("%s printed nothing in time: %v\nstderr:\n%s", p.name, ctx.Err(), p.stderr.String())
	}
	panic("unreachable")
}

// waitReady waits for the process to print "ready".
func (p *proc) waitReady(t *testing.T, ctx context.Context) {
	t.Helper()
	if l := p.line(t, ctx); l != "ready" {
		t.Fatalf("%s printed %q, want \"ready\"\nstderr:\n%s", p.name, l, p.stderr.String())
	}
}

// wait waits for the process to exit and fails the test unless it exited
// with status 0.
func (p *proc) wait(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatalf("%s did not exit in time: %v\nstderr:\n%s", p.name, ctx.Err(), p.stderr.String())
	}
	if p.err != nil {
		t.Fatalf("%s failed: %v\nstderr:\n%s", p.name, p.err, p.stderr.String())
	}
	if s := p.stderr.String(); s != "" {
		t.Logf("%s stderr:\n%s", p.name, s)
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// decodeLine decodes one JSON line a script printed.
func decodeLine(t *testing.T, line string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(line), v); err != nil {
		t.Fatalf("script output %q: %v", line, err)
	}
}
