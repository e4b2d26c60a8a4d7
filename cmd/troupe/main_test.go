package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// troupeCLI runs the CLI in dir and returns its exit status and output.
func troupeCLI(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(dir, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustCLI runs the CLI and fails the test unless it succeeds.
func mustCLI(t *testing.T, dir string, args ...string) {
	t.Helper()
	if code, out, errOut := troupeCLI(t, dir, args...); code != 0 {
		t.Fatalf("troupe %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
}

// goCmd runs the go command in dir and fails the test if it fails.
func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// replaceTroupe points generated apps at this checkout, so they build
// against the code under test.
func replaceTroupe(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TROUPE_REPLACE", root)
	t.Setenv("GOFLAGS", "-mod=mod")
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{nil, 2, "troupe new app demo"},
		{[]string{"frob"}, 2, "unknown command"},
		{[]string{"new", "widget", "x"}, 2, "unknown generator"},
		{[]string{"new", "app"}, 2, "takes one name"},
		{[]string{"new", "app", "Demo"}, 2, "lowercase letter"},
		{[]string{"new", "app", "my-app"}, 2, "lowercase letter"},
		{[]string{"new", "app", "type"}, 2, "Go keyword"},
		{[]string{"new", "app", "demo", "--bogus"}, 2, "bogus"},
		{[]string{"new", "service", "billing"}, 1, "inside an app directory"},
		{[]string{"new", "topic", "order_placed"}, 2, "--version 1"},
		{[]string{"new", "subscriber", "a", "b"}, 2, "a topic, a service and a name"},
	} {
		code, _, errOut := troupeCLI(t, dir, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.says) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("troupe %v: exit %d, %q; want exit %d and one line saying %q", tc.args, code, errOut, tc.code, tc.says)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed commands left %d entries in the directory", len(entries))
	}
}

// TestGeneratorsRefuseToOverwrite runs every generator twice: the second
// run exits 1 with one line and changes nothing.
func TestGeneratorsRefuseToOverwrite(t *testing.T) {
	dir := t.TempDir()
	mustCLI(t, dir, "new", "app", "demo", "--no-tidy")
	app := filepath.Join(dir, "demo")
	for _, args := range [][]string{
		{"new", "service", "billing"},
		{"new", "topic", "invoice_sent", "--version", "1", "--service", "billing"},
		{"new", "subscriber", "invoice_sent", "greeter", "thank"},
	} {
		mustCLI(t, app, args...)
	}
	before := snapshot(t, dir)
	for _, tc := range []struct {
		dir  string
		args []string
	}{
		{dir, []string{"new", "app", "demo", "--no-tidy"}},
		{app, []string{"new", "service", "billing"}},
		{app, []string{"new", "topic", "invoice_sent", "--version", "1", "--service", "billing"}},
		{app, []string{"new", "topic", "invoice_sent", "--version", "2", "--service", "greeter"}},
		{app, []string{"new", "subscriber", "invoice_sent", "greeter", "thank"}},
	} {
		code, _, errOut := troupeCLI(t, tc.dir, tc.args...)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "nothing was changed") {
			t.Errorf("troupe %v again: exit %d, %q; want exit 1 and one line saying nothing was changed", tc.args, code, errOut)
		}
	}
	after := snapshot(t, dir)
	if len(before) != len(after) {
		t.Fatalf("refusals changed the file set: %d files before, %d after", len(before), len(after))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("refusals changed %s", p)
		}
	}
}

// snapshot reads every file under dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestGeneratedAppRuns is the acceptance test: generate an app, a topic and
// a subscriber; build, vet and test the result; run it and follow a request
// to its subscriber.
func TestGeneratedAppRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a generated app")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	replaceTroupe(t)
	dir := t.TempDir()
	mustCLI(t, dir, "new", "app", "demo")
	app := filepath.Join(dir, "demo")
	mustCLI(t, app, "new", "topic", "order_placed", "--version", "1", "--service", "greeter")
	mustCLI(t, app, "new", "subscriber", "order_placed", "greeter", "audit")
	mustCLI(t, app, "new", "service", "billing")
	mustCLI(t, app, "new", "subscriber", "order_placed", "billing", "charge")

	// gofmt -l prints the files whose formatting differs.
	gofmt := exec.Command("gofmt", "-l", ".")
	gofmt.Dir = app
	if out, err := gofmt.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("gofmt -l: %v %s", err, out)
	}
	bin := filepath.Join(dir, "demo-bin")
	goCmd(t, app, "build", "-o", bin, ".")
	goCmd(t, app, "vet", "./...")
	goCmd(t, app, "test", "-count=1", "./...")

	// Run the app on a free port and greet someone.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs syncBuffer
	cmd := exec.Command(bin, "--data", t.TempDir(), "--http", addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "http://" + addr
	for {
		resp, err := http.Post(base+"/greet", "application/json", strings.NewReader(`{"name":"ada"}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST /greet: %s\n%s", resp.Status, logs.String())
			}
			break
		}
		wait(t, ctx, "the app to listen", &logs)
	}
	for {
		resp, err := http.Get(base + "/greetings")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `"ada"`) {
			break
		}
		wait(t, ctx, "the remember subscriber to handle greeted", &logs)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("app exited with %v after SIGTERM\n%s", exitErr, logs.String())
		}
	case <-ctx.Done():
		t.Fatalf("app did not stop on SIGTERM\n%s", logs.String())
	}
}

// wait pauses before the next poll, failing the test when ctx is done.
func wait(t *testing.T, ctx context.Context, what string, logs *syncBuffer) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatalf("gave up waiting for %s\n%s", what, logs.String())
	case <-time.After(50 * time.Millisecond):
	}
}

// syncBuffer collects the app's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
