// Package sqlstore opens the SQLite databases the job feed's services keep
// in the data directory, one file per service, each with the outbox tables
// of its service.
package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
)

// Open opens (creating if needed) dir/file and runs schema on it, one
// statement after the other. The database closes when app stops; until
// then it is the caller's to use.
func Open(app *troupe.App, dir, file string, schema ...string) (*sql.DB, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, file)
	db, err := outbox.OpenSQLite(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	for _, stmt := range schema {
		if _, err := db.Exec(stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: create tables: %w", path, err)
		}
	}
	// Registered before the outbox is attached, so that it runs after the
	// outbox's own stop (OnStop runs in reverse order).
	app.OnStop(func(context.Context) error { return db.Close() })
	return db, nil
}

// Outbox opens dir/file as [Open] does and attaches an outbox on it to
// app, so its relay and schedules run with the app.
func Outbox(app *troupe.App, dir, file string, clock outbox.Clock, schema ...string) (*outbox.Outbox, error) {
	db, err := Open(app, dir, file, schema...)
	if err != nil {
		return nil, err
	}
	ob, err := outbox.New(db, outbox.Options{Clock: clock})
	if err != nil {
		return nil, fmt.Errorf("%s: outbox: %w", file, err)
	}
	outbox.Attach(app, ob)
	return ob, nil
}
