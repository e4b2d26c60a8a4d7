package outbox

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// migrate creates the outbox's tables if they are missing. On PostgreSQL
// it holds an advisory lock meanwhile, because two processes running
// CREATE TABLE IF NOT EXISTS at once can both try to create the table.
func (ob *Outbox) migrate(ctx context.Context) error {
	tx, err := ob.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: create tables: %w", err)
	}
	defer tx.Rollback()
	if ob.d == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "troupe-outbox-migrate"); err != nil {
			return fmt.Errorf("outbox: create tables: %w", err)
		}
	}
	for _, stmt := range ob.ddl() {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("outbox: create tables: %w\n%s", err, stmt)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: create tables: %w", err)
	}
	return nil
}

// ddl returns the statements that create the tables. Times are stored as
// Unix microseconds (event times as nanoseconds) in plain integers, so
// that both dialects compare them the same way and the relay can compare
// them with a fake clock's time.
func (ob *Outbox) ddl() []string {
	id, blob := "INTEGER PRIMARY KEY", "BLOB"
	if ob.d == Postgres {
		id, blob = "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "bytea"
	}
	o, i, p := ob.t.outbox, ob.t.inbox, ob.t.periods
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + o + ` (
	id ` + id + `,
	event_id text NOT NULL,
	type text NOT NULL,
	source text NOT NULL,
	event_time bigint NOT NULL,
	correlation_id text NOT NULL DEFAULT '',
	causation_id text NOT NULL DEFAULT '',
	traceparent text NOT NULL DEFAULT '',
	content_type text NOT NULL DEFAULT '',
	extensions text,
	data ` + blob + ` NOT NULL,
	ordering_key text,
	due_at bigint NOT NULL DEFAULT 0,
	rejected text
)`,
		`CREATE INDEX IF NOT EXISTS ` + o + `_due ON ` + o + ` (due_at)`,
		`CREATE TABLE IF NOT EXISTS ` + i + ` (
	subscription text NOT NULL,
	event_id text NOT NULL,
	handled_at bigint NOT NULL,
	PRIMARY KEY (subscription, event_id)
)`,
		`CREATE INDEX IF NOT EXISTS ` + i + `_handled ON ` + i + ` (handled_at)`,
		`CREATE TABLE IF NOT EXISTS ` + p + ` (
	schedule text NOT NULL,
	period text NOT NULL,
	fired_at bigint NOT NULL,
	PRIMARY KEY (schedule, period)
)`,
	}
}

// ph returns the n-th (1-based) placeholder of the dialect.
func (ob *Outbox) ph(n int) string {
	if ob.d == Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// phs returns placeholders from..from+n-1, comma-separated.
func (ob *Outbox) phs(from, n int) string {
	var b strings.Builder
	for k := range n {
		if k > 0 {
			b.WriteByte(',')
		}
		b.WriteString(ob.ph(from + k))
	}
	return b.String()
}
