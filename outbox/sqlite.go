package outbox

import (
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// OpenSQLite opens (creating if needed) the SQLite database file path with
// the settings an outbox needs when several goroutines or processes write:
//
//   - journal_mode WAL, so readers (the relay) never block writers;
//   - busy_timeout 10s, so a writer waits for the lock instead of failing
//     with SQLITE_BUSY;
//   - _txlock=immediate, so every transaction takes the write lock when it
//     begins; deferred transactions that read first and write later can
//     fail at once with SQLITE_BUSY when another writer is active;
//   - synchronous NORMAL (durable with WAL across process crashes; an OS
//     crash may lose the last transactions) and foreign keys on.
//
// The driver is modernc.org/sqlite, pure Go, so no C compiler is needed.
// Open your own *sql.DB instead if you want other settings; keep
// busy_timeout and _txlock=immediate.
func OpenSQLite(path string) (*sql.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("outbox: OpenSQLite: empty path: name a file, such as \"app.db\"")
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("outbox: open SQLite %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open SQLite %s: %w", path, err)
	}
	return db, nil
}
