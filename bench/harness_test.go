package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport/natsjs"
)

// embeddedEnv is an env with only the embedded server, for tests of the
// harness itself: tiny counts, no external broker.
func embeddedEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: dir + "/embedded"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return &env{o: options{runs: 1}, dataDir: dir, srv: srv}
}

// TestThroughputHarness runs each embedded throughput measurement on a few
// hundred events: each must see every event and report positive rates.
func TestThroughputHarness(t *testing.T) {
	e := embeddedEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 300
	runs := map[string]func() (Metrics, error){
		"troupe":      func() (Metrics, error) { return troupeThroughput(ctx, e, "embedded", n) },
		"raw":         func() (Metrics, error) { return rawNATSThroughput(ctx, e.embeddedConn, n, rawBare) },
		"raw+msgid":   func() (Metrics, error) { return rawNATSThroughput(ctx, e.embeddedConn, n, rawMsgID) },
		"raw+headers": func() (Metrics, error) { return rawNATSThroughput(ctx, e.embeddedConn, n, rawTroupe) },
		"watermill":   func() (Metrics, error) { return watermillNATSThroughput(ctx, e.embeddedConn, n) },
	}
	for name, run := range runs {
		m, err := run()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m["publish"] <= 0 || m["consume"] <= 0 {
			t.Errorf("%s: rates %v", name, m)
		}
	}
}

// TestFlowHarness runs the order flow with troupe and with Watermill on
// GoChannel: every order must finish and the percentiles must be ordered.
func TestFlowHarness(t *testing.T) {
	e := embeddedEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for name, start := range map[string]flowStarter{
		"troupe":    func(ctx context.Context, fin func(flowOrder)) (*flowSystem, error) { return troupeFlow(ctx, e, fin) },
		"gochannel": watermillGoChannelFlow,
	} {
		m, err := runFlow(ctx, start, 200, 20, 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m["rate"] <= 0 || m["p50"] <= 0 || m["p50"] > m["p99"] || m["p99"] > m["p999"] {
			t.Errorf("%s: metrics %v", name, m)
		}
	}
}

// The app-load section replaces only itself, wherever it is, and the full
// report carries it over.
func TestSpliceSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "B.md")
	if err := os.WriteFile(path, []byte("# Benchmarks\n\n## 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := spliceSection(path, appsBegin, appsEnd, "first\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	want := "# Benchmarks\n\n## 1\n\n" + appsBegin + "\nfirst\n" + appsEnd + "\n"
	if string(b) != want {
		t.Fatalf("added:\n%q\nwant\n%q", b, want)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(want, appsEnd+"\n", appsEnd+"\n\n## 2\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := spliceSection(path, appsBegin, appsEnd, "second\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	want = "# Benchmarks\n\n## 1\n\n" + appsBegin + "\nsecond\n" + appsEnd + "\n\n## 2\n"
	if string(b) != want {
		t.Fatalf("replaced:\n%q\nwant\n%q", b, want)
	}
	if got := carrySection(path, appsBegin, appsEnd); got != appsBegin+"\nsecond\n"+appsEnd+"\n" {
		t.Errorf("carried %q", got)
	}
}
