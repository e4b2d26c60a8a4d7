package usermgmt_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/usermgmt/mailsink"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

// TestStorage runs a registration and a deletion on each database, checks
// the rows the services wrote there, and restarts the app on the same data
// to see that the users persist.
func TestStorage(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		checkStorage(t, dir, "", func(service string) *sql.DB {
			db, err := outbox.OpenSQLite(filepath.Join(dir, service+".db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := postgresSchema(t)
		checkStorage(t, t.TempDir(), dsn, func(string) *sql.DB {
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
}

// postgresSchema creates a schema of its own for the test in the
// PostgreSQL of TROUPE_TEST_POSTGRES (default the local one, database
// test), drops it when the test ends, and returns a URL that works in it.
func postgresSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TROUPE_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	admin, err := sql.Open("pgx", base)
	if err == nil {
		err = admin.Ping()
	}
	needService(t, "PostgreSQL at "+base, err)
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "usermgmt_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func checkStorage(t *testing.T, dir, dsn string, open func(service string) *sql.DB) {
	sink := mailsink.New("127.0.0.1:0")
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Stop() })
	run := func() (*system, func()) {
		cfg := troupetest.Config(t, troupe.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0"})
		app, err := usermgmt.NewApp(cfg, &usermgmt.Options{DB: store.DB{URL: dsn}, Sink: sink, Mailer: fastMailer})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := app.Start(ctx); err != nil {
			t.Fatal(err)
		}
		stop := func() {
			client.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := app.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
		return &system{app: app, base: "http://" + app.HTTPAddr(), sink: sink, dir: dir}, stop
	}

	s, stop := run()
	kept := register(t, s, "Kept", "kept@example.com", http.StatusCreated, "Prefer: wait=10")
	gone := register(t, s, "Gone", "gone@example.com", http.StatusCreated, "Prefer: wait=10")
	if status, _, b := do(t, "DELETE", s.base+gone.Links.Self, ""); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, b)
	}
	poll(t, "the coupons: one active, one revoked", func() bool {
		_, _, k := do(t, "GET", s.base+"/coupons/"+kept.ID, "")
		_, _, g := do(t, "GET", s.base+"/coupons/"+gone.ID, "")
		return contains(k, `"active"`) && contains(g, `"revoked"`)
	})
	stop()

	// The rows are where the services keep them.
	udb, mdb, cdb := open("users"), open("mailer"), open("coupons")
	var email string
	if err := udb.QueryRow("SELECT email FROM users WHERE id = '" + kept.ID + "'").Scan(&email); err != nil || email != kept.Email {
		t.Errorf("users row of %s: %q (%v)", kept.ID, email, err)
	}
	if n := countRows(t, udb, "users"); n != 1 {
		t.Errorf("%d users rows, want 1 (the deleted one removed)", n)
	}
	inboxes := []struct {
		db     *sql.DB
		prefix string
		inbox  int
	}{
		{udb, "users", 2},   // the two registrations' outcomes (welcome_mail_sent)
		{mdb, "mailer", 2},  // two registrations handled
		{cdb, "coupons", 3}, // two registrations and a deletion handled
	}
	for _, c := range inboxes {
		if n := countRows(t, c.db, c.prefix+"_inbox"); n != c.inbox {
			t.Errorf("%s_inbox has %d rows, want %d", c.prefix, n, c.inbox)
		}
	}
	if n := countRows(t, cdb, "coupons"); n != 2 {
		t.Errorf("%d coupon rows, want 2 (one active, one revoked)", n)
	}

	// A restarted app finds its users, and sends nobody a second mail.
	s, stop = run()
	defer stop()
	if status, _, b := do(t, "GET", s.base+kept.Links.Self, ""); status != http.StatusOK || !contains(b, kept.Email) {
		t.Errorf("after a restart GET %s: %d %s", kept.Links.Self, status, b)
	}
	if status, _, b := do(t, "GET", s.base+gone.Links.Self, ""); status != http.StatusNotFound {
		t.Errorf("after a restart GET %s (deleted): %d %s", gone.Links.Self, status, b)
	}
	if status, _, b := do(t, "POST", s.base+"/users", `{"name":"Kept again","email":"kept@example.com"}`); status != http.StatusConflict {
		t.Errorf("after a restart, registering a taken address: %d %s, want 409", status, b)
	}
	// Events committed but not yet relayed when the app stopped (the last
	// coupon_issued, say) wait in the outbox tables; the restarted relays
	// publish them.
	for _, c := range inboxes {
		poll(t, c.prefix+"_outbox to drain", func() bool { return countRows(t, c.db, c.prefix+"_outbox") == 0 })
	}
	if n := len(sink.Mails("")); n != 2 {
		t.Errorf("%d mails, want 2", n)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
