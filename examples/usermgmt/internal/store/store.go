// Package store opens the database of one user-management service: a
// SQLite file of its own in the app's data directory by default, or a
// PostgreSQL database shared by the services, each in tables of its own.
package store

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/troupe-go/troupe/outbox"
)

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens the database of service. An empty dsn opens (creating it if
// needed) the SQLite file <dataDir>/<service>.db with outbox.OpenSQLite's
// settings; a postgres:// or postgresql:// URL opens PostgreSQL through pgx
// and checks that it answers. Anything else is an error that shows both
// forms.
func Open(dsn, dataDir, service string) (*sql.DB, error) {
	switch {
	case dsn == "":
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("%s: data directory: %w", service, err)
		}
		return outbox.OpenSQLite(filepath.Join(dataDir, service+".db"))
	case IsPostgres(dsn):
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("%s: open PostgreSQL: %w", service, err)
		}
		if err := db.Ping(); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: PostgreSQL does not answer: %w", service, err)
		}
		return db, nil
	}
	return nil, fmt.Errorf("database %q: leave it empty for SQLite files in the data directory, or give a URL such as postgres://user@127.0.0.1:5432/db", redact(dsn))
}

// redact hides a password in a URL-like dsn.
func redact(dsn string) string {
	if i := strings.Index(dsn, "@"); i >= 0 {
		if j := strings.Index(dsn, "://"); j >= 0 && j < i {
			return dsn[:j+3] + "***@" + dsn[i+1:]
		}
	}
	return dsn
}

// Q rewrites the '?' placeholders of query as $1, $2, … when ob runs on
// PostgreSQL; SQLite takes query as written.
func Q(ob *outbox.Outbox, query string) string {
	if ob.Dialect() != outbox.Postgres {
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
