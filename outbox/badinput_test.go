package outbox_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

func TestNewRejectsBadOptions(t *testing.T) {
	db := sqliteDB(t).open(t)
	if _, err := outbox.New(db, outbox.Options{Dialect: "oracle"}); !errors.Is(err, outbox.ErrUnknownDialect) {
		t.Errorf("unknown dialect: %v, want ErrUnknownDialect", err)
	}
	if _, err := outbox.New(nil, outbox.Options{}); err == nil {
		t.Error("nil db accepted")
	}
	for _, p := range []string{"1abc", "a-b", "x; DROP TABLE users", strings.Repeat("a", 41)} {
		if _, err := outbox.New(db, outbox.Options{Prefix: p}); err == nil || !strings.Contains(err.Error(), "Prefix") {
			t.Errorf("prefix %q: %v, want an error naming Options.Prefix", p, err)
		}
	}
	if _, err := outbox.New(db, outbox.Options{BatchSize: 100_000}); err == nil {
		t.Error("a batch size beyond SQLite's parameter limit accepted")
	}
	// Nothing was created by the failed calls.
	if n := countRows(t, db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"); n != 0 {
		t.Errorf("failed calls created %d tables", n)
	}
	if _, err := outbox.OpenSQLite(""); err == nil {
		t.Error("OpenSQLite with an empty path succeeded")
	}
}

// A nil transaction, a context without an app, an app that is not started
// and an oversized event each fail clearly, and none of them loses the
// events already written in the transaction.
func TestPublishTxRejectsBadInput(t *testing.T) {
	eachDB(t, func(t *testing.T, d database) {
		rec := troupetest.NewRecorder()
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: "bad", Transport: rec}))
		app.Service("orders").Publishes(noteTopic)
		ob := newOutbox(t, d, outbox.Options{MaxEventBytes: 1024})
		outbox.Attach(app, ob)

		tx, err := ob.DB().Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.PublishTx(app.Context(t.Context()), tx, noteTopic, Note{N: 1}); !errors.Is(err, troupe.ErrNotStarted) {
			t.Errorf("before start: %v, want troupe.ErrNotStarted", err)
		}
		tx.Rollback()
		troupetest.Start(t, app)
		ctx := app.Context(t.Context())

		if err := outbox.PublishTx(ctx, nil, noteTopic, Note{N: 1}); !errors.Is(err, outbox.ErrNilTx) {
			t.Errorf("nil tx: %v, want ErrNilTx", err)
		}
		tx, err = ob.DB().Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if err := outbox.PublishTx(context.Background(), tx, noteTopic, Note{N: 1}); !errors.Is(err, outbox.ErrNoOutbox) {
			t.Errorf("no app in ctx: %v, want ErrNoOutbox", err)
		}
		other := troupe.New(troupe.Config{Name: "other"})
		if err := outbox.PublishTx(other.Context(t.Context()), tx, noteTopic, Note{N: 1}); !errors.Is(err, outbox.ErrNoOutbox) {
			t.Errorf("app without an outbox: %v, want ErrNoOutbox", err)
		}
		if err := outbox.PublishTx(ctx, tx, noteTopic, Note{N: 1}); err != nil {
			t.Fatal(err)
		}
		big := Note{N: 2, Key: strings.Repeat("x", 2000)}
		err = outbox.PublishTx(ctx, tx, noteTopic, Note{N: 3}, big)
		if !errors.Is(err, outbox.ErrTooLarge) || !strings.Contains(err.Error(), "MaxEventBytes") {
			t.Errorf("oversized event: %v, want ErrTooLarge naming MaxEventBytes", err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		waitPending(t, ob, 0)
		notes := troupetest.Events(t, rec.Published(), noteTopic)
		if len(notes) != 1 || notes[0].Data.N != 1 {
			t.Errorf("published %v, want only event 1 (event 3 shared the call of the oversized one, so neither was written)", notes)
		}
		if err := ob.Schedule("x", "at noon", func(context.Context, *sql.Tx, outbox.Tick) error { return nil }); err == nil {
			t.Error("a bad schedule spec was accepted")
		}
		if err := ob.Schedule("", "daily at 12:00", func(context.Context, *sql.Tx, outbox.Tick) error { return nil }); err == nil {
			t.Error("a schedule without a name was accepted")
		}
	})
}

// An event the broker refuses for good is set aside, and the events
// behind it are published.
func TestRefusedEventDoesNotBlockTheRest(t *testing.T) {
	eachDB(t, func(t *testing.T, d database) {
		rec := troupetest.NewRecorder() // refuses data over 1 MiB, as brokers do by default
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: "refused", Transport: rec}))
		app.Service("orders").Publishes(noteTopic)
		ob := newOutbox(t, d, outbox.Options{MaxEventBytes: 2 << 20})
		outbox.Attach(app, ob)
		troupetest.Start(t, app)
		ctx := app.Context(t.Context())
		tx, err := ob.DB().Begin()
		if err != nil {
			t.Fatal(err)
		}
		huge := Note{N: 2, Key: strings.Repeat("x", 3<<19)}
		if err := outbox.PublishTx(ctx, tx, noteTopic, Note{N: 1}, huge, Note{N: 3}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		waitPending(t, ob, 0)
		notes := troupetest.Events(t, rec.Published(), noteTopic)
		if len(notes) != 2 || notes[0].Data.N != 1 || notes[1].Data.N != 3 {
			t.Errorf("published %d events, want 1 and 3 in order", len(notes))
		}
		rejected, err := ob.Rejected(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rejected) != 1 || rejected[0].Type != noteTopic.Type() || !strings.Contains(rejected[0].Reason, "too large") {
			t.Errorf("rejected: %+v, want the huge event with its reason", rejected)
		}
	})
}

// A dialect that the driver cannot be detected for is reported with the fix.
func TestUnknownDriver(t *testing.T) {
	db := sql.OpenDB(nullConnector{})
	_, err := outbox.New(db, outbox.Options{})
	if !errors.Is(err, outbox.ErrUnknownDialect) || !strings.Contains(err.Error(), "Options.Dialect") {
		t.Errorf("got %v, want ErrUnknownDialect telling to set Options.Dialect", err)
	}
}

// nullConnector is a database/sql driver that is neither SQLite nor
// PostgreSQL and never connects: New must refuse it before using it.
type nullConnector struct{}

func (nullConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("the null driver never connects")
}
func (nullConnector) Driver() driver.Driver { return nullDriver{} }

type nullDriver struct{}

func (nullDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("the null driver never connects")
}

// A SQLite pool without a busy timeout works but is warned about, with
// the fix; one from OpenSQLite is not.
func TestWarnsAboutSQLiteWithoutBusyTimeout(t *testing.T) {
	dir := t.TempDir()
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	bare, err := sql.Open("sqlite", filepath.Join(dir, "bare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	if _, err := outbox.New(bare, outbox.Options{Logger: log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "busy_timeout") || !strings.Contains(logs.String(), "OpenSQLite") {
		t.Errorf("no warning naming busy_timeout and OpenSQLite; logs: %s", logs.String())
	}
	logs.Reset()
	good, err := outbox.OpenSQLite(filepath.Join(dir, "good.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := outbox.New(good, outbox.Options{Logger: log}); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("warned about a pool from OpenSQLite: %s", logs.String())
	}
}

// An app with two outboxes does not let PublishTx guess which one to write
// to; WithOutbox says.
func TestPublishTxWithSeveralOutboxesNeedsWithOutbox(t *testing.T) {
	rec := troupetest.NewRecorder()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "two", Transport: rec}))
	app.Service("orders").Publishes(noteTopic)
	first := newOutbox(t, sqliteDB(t), outbox.Options{})
	second := newOutbox(t, sqliteDB(t), outbox.Options{})
	outbox.Attach(app, first)
	outbox.Attach(app, second)
	troupetest.Start(t, app)
	ctx := app.Context(t.Context())
	tx, err := second.DB().Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	err = outbox.PublishTx(ctx, tx, noteTopic, Note{N: 1})
	if !errors.Is(err, outbox.ErrNoOutbox) || !strings.Contains(err.Error(), "several outboxes") {
		t.Errorf("ambiguous outbox: %v", err)
	}
	if err := outbox.PublishTx(outbox.WithOutbox(ctx, second), tx, noteTopic, Note{N: 2}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	waitPending(t, second, 0)
	if notes := troupetest.Events(t, rec.Published(), noteTopic); len(notes) != 1 || notes[0].Data.N != 2 {
		t.Errorf("published %v, want event 2 through the second outbox", notes)
	}
}
