package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

// --db takes its default from the environment and says so, shows it with
// the password hidden, and a URL of another kind fails Check with both
// forms named and the password hidden.
func TestFlagAndCheck(t *testing.T) {
	t.Setenv("EXAMPLE_DB", "postgres://me:pw@db:5432/x")
	var d store.DB
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var usage strings.Builder
	fs.SetOutput(&usage)
	d.Flag(fs, "EXAMPLE_DB")
	fs.PrintDefaults()
	if d.URL != "postgres://me:pw@db:5432/x" || !strings.Contains(usage.String(), "$EXAMPLE_DB") ||
		!strings.Contains(usage.String(), "postgres://me:xxxxx@db:5432/x") {
		t.Errorf("URL %q; -h:\n%s\nwant the default from $EXAMPLE_DB, its password hidden", d.URL, usage.String())
	}
	if err := fs.Parse([]string{"--db", "mysql://root:secret@h/db"}); err != nil {
		t.Fatal(err)
	}
	err := d.Check()
	if err == nil || !strings.Contains(err.Error(), "postgres://") || strings.Contains(err.Error(), "secret") {
		t.Errorf("Check: %v; want the two forms named and the password hidden", err)
	}
}

// A service's outbox and tables open in the app's data directory on
// SQLite, and in the app's own schema on PostgreSQL; placeholders are
// rewritten for PostgreSQL.
func TestOutboxOpensTheServiceDatabase(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	name := "Store-" + suffix // the schema: lower case, '_' for '-'

	storetest.Each(t, name, func(t *testing.T, db *store.DB) {
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: name}))
		app.Service("delivery-partner")
		ob := store.Outbox(app, db, "delivery-partner", `CREATE TABLE IF NOT EXISTS delivery_partner_couriers (id TEXT PRIMARY KEY)`)
		troupetest.Start(t, app)
		ctx := context.Background()
		if _, err := ob.DB().ExecContext(ctx, store.Q(ob, "INSERT INTO delivery_partner_couriers (id) VALUES (?)"), "c1"); err != nil {
			t.Fatal(err)
		}
		outboxTable, _, _ := ob.Tables()
		if outboxTable != "delivery_partner_outbox" {
			t.Errorf("outbox table %q", outboxTable)
		}
		if db.URL != "" {
			var schema string
			if err := ob.DB().QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil || schema != "store_"+suffix {
				t.Errorf("schema %q (%v), want store_%s", schema, err, suffix)
			}
		}
	})
}

// OutboxWith hands its options to the outbox: here a fake clock that
// times a schedule, with the service's prefix kept.
func TestOutboxWithTakesOptions(t *testing.T) {
	clock := troupetest.NewClock(time.Date(2026, 1, 5, 7, 59, 0, 0, time.UTC))
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "store-with"}))
	app.Service("digest")
	ob := store.OutboxWith(app, &store.DB{}, "digest", outbox.Options{Clock: clock})
	fired := make(chan time.Time, 1)
	if err := ob.Schedule("tick", "daily at 08:00", func(_ context.Context, _ *sql.Tx, tick outbox.Tick) error {
		fired <- tick.Period
		return nil
	}, outbox.ScheduleOptions{CatchUp: -1}); err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := clock.WaitTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	select {
	case p := <-fired:
		if p.Hour() != 8 {
			t.Errorf("period %s, want 08:00", p)
		}
	case <-ctx.Done():
		t.Fatal("the schedule did not fire on the fake clock")
	}
	if outboxTable, _, _ := ob.Tables(); outboxTable != "digest_outbox" {
		t.Errorf("outbox table %q, want digest_outbox", outboxTable)
	}
}
