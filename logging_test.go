package troupe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/term"
)

// logBuffer is a bytes.Buffer that a running app may write while the test
// reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// clearLogEnv keeps the environment of whoever runs the tests out of them.
func clearLogEnv(t *testing.T) {
	t.Setenv("TROUPE_LOG_FORMAT", "")
	t.Setenv("TROUPE_LOG_LEVEL", "")
}

func TestNewLoggerFormats(t *testing.T) {
	clearLogEnv(t)
	t.Setenv("NO_COLOR", "")
	write := func(format, level string) string {
		t.Helper()
		var buf bytes.Buffer
		l, err := NewLogger(&buf, format, level)
		if err != nil {
			t.Fatalf("NewLogger(%q, %q): %v", format, level, err)
		}
		l.Debug("detail", "n", 1)
		l.Info("reserved stock", "sku", "book", "qty", 2)
		l.Error("charge failed", "err", errors.New("card declined"))
		return buf.String()
	}

	t.Run("json", func(t *testing.T) {
		out := write("json", "info")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("want 2 lines (the debug one filtered out), got %d:\n%s", len(lines), out)
		}
		var recs []map[string]any
		for _, line := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("line does not decode as JSON: %v\n%s", err, line)
			}
			recs = append(recs, rec)
		}
		if recs[0]["level"] != "INFO" || recs[0]["msg"] != "reserved stock" || recs[0]["sku"] != "book" || recs[0]["qty"] != 2.0 {
			t.Errorf("first record: %v", recs[0])
		}
		if recs[1]["level"] != "ERROR" || recs[1]["err"] != "card declined" {
			t.Errorf("second record: %v", recs[1])
		}
		if _, ok := recs[0]["time"]; !ok {
			t.Errorf("no time in %v", recs[0])
		}
	})

	t.Run("text", func(t *testing.T) {
		out := write("text", "info")
		if strings.Contains(out, "\x1b") {
			t.Errorf("text output has ANSI escapes: %q", out)
		}
		for _, want := range []string{`level=INFO msg="reserved stock" sku=book qty=2`, `level=ERROR msg="charge failed" err="card declined"`} {
			if !strings.Contains(out, want) {
				t.Errorf("text output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "detail") {
			t.Errorf("debug record written at level info:\n%s", out)
		}
	})

	t.Run("color", func(t *testing.T) {
		out := write("color", "debug")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 {
			t.Fatalf("want 3 lines at level debug, got %d:\n%s", len(lines), out)
		}
		for _, want := range []string{"\x1b[92mINF\x1b[0m reserved stock", "\x1b[91mERR\x1b[0m charge failed", "DBG detail"} {
			if !strings.Contains(out, want) {
				t.Errorf("color output lacks %q:\n%q", want, out)
			}
		}
	})

	t.Run("auto to a buffer", func(t *testing.T) {
		out := write("", "")
		if strings.Contains(out, "\x1b") || !strings.Contains(out, `level=INFO msg="reserved stock"`) {
			t.Errorf("auto to a non-terminal should be plain text at info:\n%q", out)
		}
	})

	t.Run("case-insensitive", func(t *testing.T) {
		out := write(" JSON ", "Error")
		if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"level":"ERROR"`) {
			t.Errorf("JSON at Error: want one error record, got:\n%s", out)
		}
	})
}

func TestNewLoggerRejectsUnknownValues(t *testing.T) {
	for _, tc := range []struct{ format, level, want string }{
		{"yaml", "info", `troupe: log format "yaml": use auto, text, color or json`},
		{"logfmt", "", `troupe: log format "logfmt": use auto, text, color or json`},
		{"json", "trace", `troupe: log level "trace": use debug, info, warn or error`},
		{"text", "warning", `troupe: log level "warning": use debug, info, warn or error`},
	} {
		l, err := NewLogger(&bytes.Buffer{}, tc.format, tc.level)
		if err == nil || err.Error() != tc.want || l != nil {
			t.Errorf("NewLogger(%q, %q) = %v, %v; want nil, %q", tc.format, tc.level, l, err, tc.want)
		}
	}
}

func TestAutoFormatFollowsTheTerminal(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm-256color")
	file, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if got := resolveFormat(file, LogAuto); got != LogText {
		t.Errorf("auto for a regular file = %s, want text", got)
	}
	if got := resolveFormat(file, LogColor); got != LogColor {
		t.Errorf("an explicit color format = %s, want color", got)
	}

	// The master side of a pseudo-terminal is a terminal as far as
	// term.IsTerminal can tell, and needs no process at the other end.
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test with: %v", err)
	}
	defer pty.Close()
	if !term.IsTerminal(int(pty.Fd())) {
		t.Skip("/dev/ptmx is not a terminal here")
	}
	if got := resolveFormat(pty, LogAuto); got != LogColor {
		t.Errorf("auto for a terminal = %s, want color", got)
	}
	t.Setenv("NO_COLOR", "1")
	if got := resolveFormat(pty, LogAuto); got != LogText {
		t.Errorf("auto for a terminal with NO_COLOR set = %s, want text", got)
	}
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "dumb")
	if got := resolveFormat(pty, LogAuto); got != LogText {
		t.Errorf("auto for a terminal with TERM=dumb = %s, want text", got)
	}
}

var logTestTopic = NewTopic[struct{ N int }]("log_test", 1)

// misdeclaredApp returns an app whose Start fails at validation, before it
// connects anywhere: RunCommand parses the flags, applies them, and returns.
func misdeclaredApp(cfg Config) *App {
	cfg.Name = "logtest"
	a := New(cfg)
	Subscribe(a.Service("svc"), logTestTopic, "sub", func(context.Context, Event[struct{ N int }]) error { return nil })
	return a // nobody publishes log_test
}

// TestRunCommandLogFlags runs an app with --log-format json --log-level
// debug and reads the app's own log lines, from start to stop, off the
// stderr it was given.
func TestRunCommandLogFlags(t *testing.T) {
	clearLogEnv(t)
	a := New(Config{Name: "logflags"})
	handled := make(chan struct{}, 1)
	Subscribe(a.Service("svc").Publishes(logTestTopic), logTestTopic, "sub",
		func(context.Context, Event[struct{ N int }]) error { handled <- struct{}{}; return nil })
	var stderr logBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		ran <- a.RunCommand(ctx, []string{"--log-format", "json", "--log-level", "debug", "--data", t.TempDir(), "--http", "off"}, &stderr)
	}()
	waitForLog(t, &stderr, ran, `"msg":"troupe app started"`)
	if err := Publish(a.Context(context.Background()), logTestTopic, struct{ N int }{1}); err != nil {
		t.Fatal(err)
	}
	<-handled
	// The debug line for a handled event comes from the subscription's
	// delivery path, which reads the app's logger per event.
	waitForLog(t, &stderr, ran, `"msg":"handled"`)
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("RunCommand: %v", err)
	}

	msgs := map[string]map[string]any{}
	for line := range strings.Lines(stderr.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %v\n%s", err, line)
		}
		msgs[rec["msg"].(string)] = rec
	}
	if rec := msgs["troupe app started"]; rec["level"] != "INFO" || rec["app"] != "logflags" {
		t.Errorf("start line: %v", rec)
	}
	if rec := msgs["handled"]; rec["level"] != "DEBUG" || rec["subscription"] != "svc.sub" {
		t.Errorf("handled line: %v", rec)
	}
	if _, ok := msgs["troupe app stopped"]; !ok {
		t.Errorf("no stop line in:\n%s", stderr.String())
	}
}

// waitForLog polls buf until it holds want, failing if the run ends first
// or 30 seconds pass.
func waitForLog(t *testing.T, buf *logBuffer, ran <-chan error, want string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(buf.String(), want) {
		select {
		case err := <-ran:
			t.Fatalf("RunCommand returned %v before logging %s; stderr:\n%s", err, want, buf.String())
		case <-deadline:
			t.Fatalf("no %s logged within 30s; stderr:\n%s", want, buf.String())
		case <-time.After(10 * time.Millisecond): // poll interval
		}
	}
}

func TestRunCommandRejectsBadLogValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  [2]string // TROUPE_LOG_FORMAT, TROUPE_LOG_LEVEL
		want string
	}{
		{args: []string{"--log-format", "yaml"}, want: `logtest: --log-format "yaml": use auto, text, color or json` + "\n"},
		{args: []string{"--log-level", "loud"}, want: `logtest: --log-level "loud": use debug, info, warn or error` + "\n"},
		{env: [2]string{"xml", ""}, want: `logtest: $TROUPE_LOG_FORMAT "xml": use auto, text, color or json` + "\n"},
		{env: [2]string{"", "verbose"}, want: `logtest: $TROUPE_LOG_LEVEL "verbose": use debug, info, warn or error` + "\n"},
		// A flag overrides a bad variable, which is then never used.
		{args: []string{"--log-format", "yaml"}, env: [2]string{"json", ""}, want: `logtest: --log-format "yaml": use auto, text, color or json` + "\n"},
	} {
		t.Setenv("TROUPE_LOG_FORMAT", tc.env[0])
		t.Setenv("TROUPE_LOG_LEVEL", tc.env[1])
		// An explicit logger does not excuse a bad value.
		a := misdeclaredApp(Config{Logger: slog.New(slog.DiscardHandler)})
		var stderr bytes.Buffer
		err := a.RunCommand(context.Background(), tc.args, &stderr)
		if !errors.Is(err, ErrUsage) || stderr.String() != tc.want {
			t.Errorf("args %q env %q: err %v, stderr %q; want a usage error and %q", tc.args, tc.env, err, stderr.String(), tc.want)
		}
	}
}

func TestRunCommandLogEnv(t *testing.T) {
	t.Setenv("TROUPE_LOG_FORMAT", "json")
	t.Setenv("TROUPE_LOG_LEVEL", "warn")
	a := misdeclaredApp(Config{})
	var stderr bytes.Buffer
	if err := a.RunCommand(context.Background(), nil, &stderr); err == nil || errors.Is(err, ErrUsage) {
		t.Fatalf("want the app's declaration error, got %v", err)
	}
	a.Logger().Info("below warn")
	a.Logger().Warn("from the test", "k", "v")
	var rec map[string]any
	if err := json.Unmarshal(stderr.Bytes(), &rec); err != nil || rec["msg"] != "from the test" || rec["level"] != "WARN" {
		t.Errorf("want one JSON warning from $TROUPE_LOG_FORMAT=json and $TROUPE_LOG_LEVEL=warn, got %v, %q", err, stderr.String())
	}

	// A flag overrides the variable.
	a = misdeclaredApp(Config{})
	stderr.Reset()
	_ = a.RunCommand(context.Background(), []string{"--log-format", "text", "--log-level", "info"}, &stderr)
	a.Logger().Info("from the test")
	if got := stderr.String(); !strings.Contains(got, `level=INFO msg="from the test"`) {
		t.Errorf("flags did not override the variables: %q", got)
	}
}

func TestExplicitLoggerWinsOverLogFlags(t *testing.T) {
	clearLogEnv(t)
	var own bytes.Buffer
	explicit := slog.New(slog.NewTextHandler(&own, nil))
	a := misdeclaredApp(Config{Logger: explicit})
	var stderr bytes.Buffer
	_ = a.RunCommand(context.Background(), []string{"--log-format", "json"}, &stderr)
	if a.log != explicit {
		t.Error("--log-format replaced Config.Logger")
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr got %q; the app's logs belong to its own logger", stderr.String())
	}
	if !strings.Contains(own.String(), "ignoring --log-format") {
		t.Errorf("no warning that the flag is ignored in the app's log: %q", own.String())
	}

	// A default installed with slog.SetDefault before New counts as the
	// program's choice too; without log flags nothing is said.
	prev, prevW, prevFlags := slog.Default(), log.Writer(), log.Flags()
	t.Cleanup(func() {
		slog.SetDefault(prev)
		log.SetOutput(prevW) // slog.SetDefault sent the log package to explicit
		log.SetFlags(prevFlags)
	})
	own.Reset()
	slog.SetDefault(explicit)
	a = misdeclaredApp(Config{})
	stderr.Reset()
	_ = a.RunCommand(context.Background(), nil, &stderr)
	if a.log != explicit || stderr.Len() != 0 || own.Len() != 0 {
		t.Errorf("with slog.SetDefault before New: logger replaced %v, stderr %q, own log %q", a.log != explicit, stderr.String(), own.String())
	}
}

func TestMainMakesItsLoggerTheDefault(t *testing.T) {
	clearLogEnv(t)
	prev, prevW, prevFlags := slog.Default(), log.Writer(), log.Flags()
	t.Cleanup(func() {
		slog.SetDefault(prev)
		log.SetOutput(prevW)
		log.SetFlags(prevFlags)
	})
	a := misdeclaredApp(Config{})
	var stderr bytes.Buffer
	_ = a.runCommand(context.Background(), []string{"--log-format", "json"}, &stderr, true) // as Main calls it
	if slog.Default() != a.log || a.log == prev {
		t.Fatal("Main did not make the logger of its flags slog's default")
	}
	slog.Info("from the program")
	if !strings.Contains(stderr.String(), `"msg":"from the program"`) {
		t.Errorf("slog.Info did not reach the app's JSON log: %q", stderr.String())
	}
	if log.Writer() != prevW || log.Flags() != prevFlags {
		t.Error("the log package's writer or flags changed")
	}

	// RunCommand leaves the default alone.
	slog.SetDefault(prev)
	a = misdeclaredApp(Config{})
	_ = a.RunCommand(context.Background(), []string{"--log-format", "json"}, &stderr)
	if slog.Default() != prev {
		t.Error("RunCommand changed slog's default logger")
	}
}
