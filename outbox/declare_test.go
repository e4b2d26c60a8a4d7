package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

// declaredApp declares an app whose ledger service applies notes through
// an outbox of Declare, which opens <data dir>/ledger.db where the ledger
// runs; opened counts the calls of the open function that opened one.
func declaredApp(t *testing.T, opts outbox.Options) (*troupe.App, *outbox.Outbox, *int) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "obt-" + randHex(4)}))
	opened := new(int)
	ob := outbox.Declare(app, opts, func(ctx context.Context) (*sql.DB, error) {
		if !app.Runs("ledger") {
			return nil, nil
		}
		db, err := outbox.OpenSQLite(filepath.Join(app.DataDir(), "ledger.db"))
		if err != nil {
			return nil, err
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS effects (n int NOT NULL)"); err != nil {
			db.Close()
			return nil, err
		}
		*opened++
		return db, nil
	})
	app.Service("orders").Publishes(noteTopic)
	outbox.Subscribe(app.Service("ledger").Publishes(orderPlaced), noteTopic, "apply", ob,
		func(ctx context.Context, tx *sql.Tx, ev troupe.Event[Note]) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO effects (n) VALUES (?)", ev.Data.N); err != nil {
				return err
			}
			return outbox.PublishTx(ctx, tx, orderPlaced, Order{ID: ev.ID})
		}, troupe.Emits(orderPlaced))
	return app, ob, opened
}

// runWithArgs runs app with a command line, as App.Main would, until the
// test ends; it returns once the app is ready, or fails the test with
// Start's error.
func runWithArgs(t *testing.T, app *troupe.App, args ...string) (stop func() error) {
	t.Helper()
	ready := make(chan struct{})
	app.OnReady(func(context.Context) error { close(ready); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunCommand(ctx, args, os.Stderr) }()
	stopped := false
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case <-ready:
	case err := <-done:
		stopped, runErr = true, err
		cancel()
		t.Fatalf("the app did not start: %v", err)
	}
	return stop
}

// An outbox of Declare learns where its database lives from the command
// line: it opens at start in the --data directory, applies and relays
// like an outbox of New, and closes its database when the app stops.
func TestDeclareOpensWhereTheCommandLineSays(t *testing.T) {
	app, ob, opened := declaredApp(t, outbox.Options{Prefix: "ledger"})
	if ob.DB() != nil {
		t.Fatal("the outbox has a database before the app started")
	}
	data := t.TempDir()
	orders := newCounter()
	troupe.Subscribe(app.Service("audit"), orderPlaced, "log", func(ctx context.Context, ev troupe.Event[Order]) error {
		orders.add(ev.Data.ID)
		return nil
	})
	stop := runWithArgs(t, app, "--data", data, "--http", "off")
	if *opened != 1 || ob.DB() == nil {
		t.Fatalf("opened %d times, DB %v: want one database once the app runs", *opened, ob.DB())
	}
	if _, err := os.Stat(filepath.Join(data, "ledger.db")); err != nil {
		t.Fatalf("the database is not in --data: %v", err)
	}
	if err := troupe.Publish(app.Context(t.Context()), noteTopic, Note{N: 4}); err != nil {
		t.Fatal(err)
	}
	orders.waitFor(t, "the order the handler published", func(_ map[string]int, total int) bool { return total == 1 })
	if n := countRows(t, ob.DB(), "SELECT count(*) FROM effects WHERE n = 4"); n != 1 {
		t.Errorf("%d effects, want 1", n)
	}
	db := ob.DB()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after Stop the database answers Ping with %v, want it closed", err)
	}
}

// In a process that does not run the services using it, the outbox opens
// nothing, and writing to it says so instead of failing on a nil
// database.
func TestDeclareStaysClosedWhereItsServiceDoesNotRun(t *testing.T) {
	app, ob, opened := declaredApp(t, outbox.Options{Prefix: "ledger"})
	data := t.TempDir()
	runWithArgs(t, app, "--data", data, "--services", "orders", "--http", "off")
	if *opened != 0 || ob.DB() != nil {
		t.Fatalf("opened %d times, DB %v: want nothing opened", *opened, ob.DB())
	}
	if _, err := os.Stat(filepath.Join(data, "ledger.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a database file was made where the ledger does not run: %v", err)
	}
	err := outbox.PublishAfter(outbox.WithOutbox(app.Context(t.Context()), ob), 0, orderPlaced, Order{ID: "x"})
	if !errors.Is(err, outbox.ErrNotOpen) {
		t.Errorf("PublishAfter on a closed outbox: %v, want ErrNotOpen", err)
	}
	if _, err := ob.Seen(t.Context(), "ledger.apply", "x"); !errors.Is(err, outbox.ErrNotOpen) {
		t.Errorf("Seen on a closed outbox: %v, want ErrNotOpen", err)
	}
	if _, err := ob.Pending(t.Context()); !errors.Is(err, outbox.ErrNotOpen) {
		t.Errorf("Pending on a closed outbox: %v, want ErrNotOpen", err)
	}
}

// Options that New would refuse, and an open function that fails, fail
// the app's start with their reason, and leave no database open.
func TestDeclareFailsTheStart(t *testing.T) {
	t.Run("bad options", func(t *testing.T) {
		app, _, opened := declaredApp(t, outbox.Options{Prefix: "no spaces"})
		err := app.Start(t.Context())
		if err == nil || !strings.Contains(err.Error(), "Options.Prefix") {
			t.Fatalf("Start: %v, want the prefix named", err)
		}
		if *opened != 0 {
			t.Errorf("opened %d databases for an outbox that cannot work", *opened)
		}
	})
	t.Run("open fails", func(t *testing.T) {
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: "obt-" + randHex(4)}))
		ob := outbox.Declare(app, outbox.Options{}, func(context.Context) (*sql.DB, error) {
			return nil, errors.New("disk on fire")
		})
		outbox.Subscribe(app.Service("ledger"), noteTopic, "apply", ob,
			func(context.Context, *sql.Tx, troupe.Event[Note]) error { return nil })
		app.Service("orders").Publishes(noteTopic)
		if err := app.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("Start: %v, want the open function's error", err)
		}
	})
}
