// Package storetest gives the example apps' tests their databases: SQLite
// in the test's data directory, or PostgreSQL (TROUPE_TEST_POSTGRES, by
// default the local server's database "test") in a schema of the test's
// own, dropped when the test ends.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/troupe-go/troupe/examples/internal/store"
)

// PostgresURL is the PostgreSQL the tests use: $TROUPE_TEST_POSTGRES, or
// the local server's database "test" as user postgres.
func PostgresURL() string {
	if u := os.Getenv("TROUPE_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Postgres returns the --db setting of an app named app on the tests'
// PostgreSQL: store.Open puts the app's tables in the schema named after
// the app, which is dropped when the test ends. Without PostgreSQL the
// test is skipped, or fails in CI (CI set), where it must be there.
func Postgres(t testing.TB, app string) *store.DB {
	t.Helper()
	admin, err := sql.Open("pgx", PostgresURL())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		msg := fmt.Sprintf("no PostgreSQL at %s (%v): start it or set TROUPE_TEST_POSTGRES", redact(PostgresURL()), err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI must provide it)")
		}
		t.Skip(msg)
	}
	schema := strings.ToLower(store.Prefix(app))
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	return &store.DB{URL: PostgresURL()}
}

// Each runs f with SQLite (an empty store.DB) and with PostgreSQL, each
// as a subtest; app names the app whose schema Postgres drops.
func Each(t *testing.T, app string, f func(t *testing.T, db *store.DB)) {
	t.Run("sqlite", func(t *testing.T) { f(t, &store.DB{}) })
	t.Run("postgres", func(t *testing.T) { f(t, Postgres(t, app)) })
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}
