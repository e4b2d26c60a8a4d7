// Package store is where the example apps' services keep their state: a
// SQLite file per service in the app's data directory by default (nothing
// to install), or one PostgreSQL database given with --db, in a schema named
// after the app, where each service's tables start with its own name.
//
// A service declares its database with its subscriptions, before the
// command line is parsed, and gets it when the app starts, in the
// processes that run the service:
//
//	ob := store.Outbox(app, db, "payment", `CREATE TABLE IF NOT EXISTS payment_charges (...)`)
//	outbox.Subscribe(svc, OrderPlaced, "charge", ob, p.charge)
//	... ob.DB() in handlers and routes, store.Q(ob, "SELECT ... WHERE id = ?") for placeholders
//
// Write the schema in SQL both databases take: TEXT, BIGINT, INTEGER,
// PRIMARY KEY and UNIQUE constraints, INSERT ... ON CONFLICT DO NOTHING,
// RETURNING; no AUTOINCREMENT or SERIAL (use ids of your own).
package store

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
)

// DB says where an app's services keep their state. The zero value keeps
// it in SQLite files in the data directory.
type DB struct {
	// URL is empty for one SQLite file per service in the app's data
	// directory (<data>/<service>.db), or a postgres:// (postgresql://) URL
	// for one PostgreSQL database that all the app's services share. On
	// PostgreSQL the tables go to the schema of the URL's search_path, or
	// else to a schema named after the app (created if missing), so that
	// two apps share one database without sharing tables.
	URL string
}

// Flag registers --db on fs, for [troupe.App.Flags]. Its default is d.URL,
// or else the environment variable env when env is not empty; -h shows it
// with its password hidden. A value that is neither empty nor a PostgreSQL
// URL fails the start (see [DB.Check]) rather than the parse: the flag
// package would quote it, password and all, in its usage error.
func (d *DB) Flag(fs *flag.FlagSet, env string) {
	from := ""
	if d.URL == "" && env != "" {
		d.URL, from = os.Getenv(env), " (default $"+env+")"
	}
	fs.Var(urlFlag{d}, "db", "database `URL` of the services' state: empty for SQLite files in the data directory, or postgres://user@host:5432/db"+from)
}

// urlFlag is --db, shown with its password hidden.
type urlFlag struct{ d *DB }

func (f urlFlag) String() string {
	if f.d == nil || f.d.URL == "" {
		return ""
	}
	return redact(f.d.URL)
}

func (f urlFlag) Set(s string) error {
	f.d.URL = s
	return nil
}

// Check reports a URL that is neither empty nor PostgreSQL, with both
// forms in the message. Open calls it; call it early to fail at once.
func (d *DB) Check() error {
	if d.URL == "" || IsPostgres(d.URL) {
		return nil
	}
	return fmt.Errorf("--db %q: leave it empty for SQLite files in the data directory, or give a URL such as postgres://user@127.0.0.1:5432/db", redact(d.URL))
}

// IsPostgres reports whether url names a PostgreSQL database.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Open opens the database that holds file's tables for app: the SQLite
// file <app's data dir>/<file>.db (made if missing, with
// outbox.OpenSQLite's settings), or the PostgreSQL database of the URL in
// the app's schema. Call it when the app starts, once the command line is
// parsed. It fails for a URL of another kind, and for a PostgreSQL that does
// not answer.
func (d *DB) Open(ctx context.Context, app *troupe.App, file string) (*sql.DB, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	if d.URL == "" {
		dir := app.DataDir()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("%s: data directory: %w", file, err)
		}
		return outbox.OpenSQLite(filepath.Join(dir, file+".db"))
	}
	dsn, schema, err := withSchema(d.URL, app.Name())
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: open PostgreSQL: %w", file, err)
	}
	// database/sql keeps 2 idle connections by default: under load a
	// service would open and close a PostgreSQL connection (a new server
	// process) for nearly every transaction. Keep a small pool instead,
	// bounded so that an app's services together stay well under the
	// server's max_connections (100 by default).
	db.SetMaxOpenConns(PostgresPoolSize)
	db.SetMaxIdleConns(PostgresPoolSize)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: PostgreSQL at %s does not answer: %w", file, redact(d.URL), err)
	}
	if schema != "" {
		if _, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: create schema %s: %w", file, schema, err)
		}
	}
	return db, nil
}

// PostgresPoolSize is how many connections each database [DB.Open] opens
// on PostgreSQL holds at most, and keeps open when idle.
const PostgresPoolSize = 8

// Outbox declares the outbox of service on app (see outbox.Declare): where
// the service runs, it opens the service's database with d.Open when the
// app starts, runs schema (statements that must be safe to run again, such
// as CREATE TABLE IF NOT EXISTS) and sets up the outbox tables, prefixed
// with the service's name. The outbox closes the database when the app
// stops. Where the service does not run, it opens nothing.
func Outbox(app *troupe.App, d *DB, service string, schema ...string) *outbox.Outbox {
	return OutboxWith(app, d, service, outbox.Options{}, schema...)
}

// OutboxWith is [Outbox] with options of the outbox's own: a clock that
// tests drive (Options.Clock), a poll interval. An empty Options.Prefix
// becomes the service's [Prefix].
func OutboxWith(app *troupe.App, d *DB, service string, opts outbox.Options, schema ...string) *outbox.Outbox {
	if opts.Prefix == "" {
		opts.Prefix = Prefix(service)
	}
	return outbox.Declare(app, opts, func(ctx context.Context) (*sql.DB, error) {
		if !app.Runs(service) {
			return nil, nil
		}
		db, err := d.Open(ctx, app, service)
		if err != nil {
			return nil, err
		}
		if err := Exec(ctx, db, schema...); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", service, err)
		}
		return db, nil
	})
}

// Handle is a database of [Declare]: it opens when the app starts, in the
// process that runs its service.
type Handle struct {
	db *sql.DB
	d  outbox.Dialect
}

// DB returns the database, or nil where it did not open (before the app
// started, or in a process that does not run the service).
func (h *Handle) DB() *sql.DB { return h.db }

// Q is [QDialect] in the handle's dialect.
func (h *Handle) Q(query string) string { return QDialect(h.d, query) }

// Declare declares a database of service on app that is not an outbox's
// (an outside system's books, say): where the service runs, it opens file
// with d.Open when the app starts and runs schema; it closes the database
// when the app stops.
func Declare(app *troupe.App, d *DB, service, file string, schema ...string) *Handle {
	h := &Handle{}
	app.OnStart(func(ctx context.Context) error {
		if !app.Runs(service) {
			return nil
		}
		db, err := d.Open(ctx, app, file)
		if err != nil {
			return err
		}
		if err := Exec(ctx, db, schema...); err != nil {
			db.Close()
			return fmt.Errorf("%s: %w", file, err)
		}
		h.db, h.d = db, Dialect(db)
		return nil
	})
	app.OnStop(func(context.Context) error {
		if h.db == nil {
			return nil
		}
		return h.db.Close()
	})
	return h
}

// Exec runs statements one after the other, stopping at the first error.
func Exec(ctx context.Context, db *sql.DB, statements ...string) error {
	for _, s := range statements {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create tables: %w\n%s", err, s)
		}
	}
	return nil
}

// Prefix turns a service's name into a table-name prefix: letters, digits
// and '_' ("delivery-partner" → "delivery_partner").
func Prefix(service string) string {
	return nonIdent.ReplaceAllString(service, "_")
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]`)

// Q rewrites the '?' placeholders of query as $1, $2, … when db is
// PostgreSQL; SQLite takes query as written. query must not contain '?'
// elsewhere (in string literals).
func Q(ob *outbox.Outbox, query string) string {
	return QDialect(ob.Dialect(), query)
}

// QDialect is [Q] for a dialect.
func QDialect(d outbox.Dialect, query string) string {
	if d != outbox.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Dialect tells the SQL dialect of a database opened by [DB.Open].
func Dialect(db *sql.DB) outbox.Dialect {
	if strings.Contains(fmt.Sprintf("%T", db.Driver()), "sqlite") {
		return outbox.SQLite
	}
	return outbox.Postgres
}

// withSchema returns dsn with the search_path set to the app's schema,
// and that schema, unless dsn names a search_path of its own.
func withSchema(dsn, app string) (string, string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", "", fmt.Errorf("--db: %v", err)
	}
	q := u.Query()
	if q.Get("search_path") != "" {
		return dsn, "", nil
	}
	schema := strings.ToLower(Prefix(app))
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), schema, nil
}

// redact hides a password in a URL.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}
