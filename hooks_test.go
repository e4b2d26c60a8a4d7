package troupe_test

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

// A program's own flags are parsed with troupe's; OnStart sees them and
// the data dir and services the command line chose; OnReady sees the HTTP
// address; Stopping closes when Stop begins.
func TestFlagsAndLifecycleHooks(t *testing.T) {
	dir := t.TempDir()
	app := troupe.New(troupe.Config{Name: "hooks", Logger: quietLogger()})
	app.Service("orders").HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {})
	app.Service("billing")
	var rate float64
	app.Flags(func(fs *flag.FlagSet) { fs.Float64Var(&rate, "fail-rate", 0, "share of failures") })
	type seen struct {
		rate        float64
		dataDir     string
		orders, bil bool
		addr        string
	}
	got := make(chan seen, 1)
	var atStart seen
	app.OnStart(func(context.Context) error {
		atStart = seen{rate: rate, dataDir: app.DataDir(), orders: app.Runs("orders"), bil: app.Runs("billing")}
		return nil
	})
	app.OnReady(func(context.Context) error {
		s := atStart
		s.addr = app.HTTPAddr()
		got <- s
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr syncBuffer
	go func() {
		done <- app.RunCommand(ctx, []string{"--fail-rate", "0.25", "--data", filepath.Join(dir, "d"), "--services", "orders", "--http", "127.0.0.1:0"}, &stderr)
	}()
	select {
	case s := <-got:
		if s.rate != 0.25 || s.dataDir != filepath.Join(dir, "d") || !s.orders || s.bil || s.addr == "" {
			t.Errorf("hooks saw %+v", s)
		}
	case err := <-done:
		t.Fatalf("RunCommand: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("OnReady never ran")
	}
	select {
	case <-app.Stopping():
		t.Fatal("Stopping closed before Stop")
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-app.Stopping():
	default:
		t.Error("Stopping not closed after Stop")
	}
}

func TestProgramFlagsAreUsageErrors(t *testing.T) {
	app := troupe.New(troupe.Config{Name: "hooks", Logger: quietLogger()})
	app.Service("idle")
	app.Flags(func(fs *flag.FlagSet) { fs.Int("orders", 0, "how many orders") })
	var stderr syncBuffer
	err := app.RunCommand(context.Background(), []string{"--orders", "many"}, &stderr)
	if !errors.Is(err, troupe.ErrUsage) || !strings.Contains(stderr.String(), `invalid value "many" for flag -orders`) {
		t.Errorf("bad program flag: %v\n%s", err, stderr.String())
	}
	stderr = syncBuffer{}
	if err := app.RunCommand(context.Background(), []string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "how many orders") || !strings.Contains(stderr.String(), "-broker") {
		t.Errorf("-h: %v, usage lists:\n%s", err, stderr.String())
	}
}
