package troupetest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

// DefaultTimeout bounds each helper of this package that waits: starting
// and stopping an app, [Observer.Wait] unless [Observer].Timeout says
// otherwise, and [DeadLetters].
const DefaultTimeout = 30 * time.Second

// Config returns cfg with test defaults in its empty fields, so that each
// test runs isolated and quiet:
//
//   - Broker "embedded:" when neither Broker nor Transport is set, ignoring
//     $TROUPE_BROKER; set Broker to test against a real broker.
//   - DataDir: a new temporary directory, removed when the test ends.
//   - HTTPAddr "off"; set it (for example to "127.0.0.1:0") to serve routes,
//     and read the address from App.HTTPAddr.
//   - Logger: discards everything, except under go test -v, where warnings
//     and errors go to standard error.
//
// Build the app under test with it: troupe.New(troupetest.Config(t, cfg)).
func Config(t testing.TB, cfg troupe.Config) troupe.Config {
	t.Helper()
	if cfg.Broker == "" && cfg.Transport == nil {
		cfg.Broker = "embedded:"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "off"
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	return cfg
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// Start starts app and stops it when the test ends, each within
// [DefaultTimeout]. A failure to start fails the test at once; a failure to
// stop is reported with t.Errorf. Build the app with [Config] for a
// temporary data dir, no HTTP server and quiet logs.
func Start(t testing.TB, app *troupe.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatalf("troupetest: start app %s: %v", app.Name(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		defer cancel()
		if err := app.Stop(ctx); err != nil {
			t.Errorf("troupetest: stop app %s: %v", app.Name(), err)
		}
	})
}
