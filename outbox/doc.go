// Package outbox makes a service's database writes and the events it
// publishes commit together: a transactional outbox, an inbox for
// idempotent consumers, delayed events and schedules, on database/sql
// with SQLite (the embedded default, pure Go) or PostgreSQL.
//
// # Outbox
//
// troupe.Publish talks to the broker, outside any database transaction:
// a crash between the commit and the publish loses the event, and a
// publish followed by a failed commit announces something that did not
// happen. [PublishTx] instead writes the encoded events into the outbox
// table inside the caller's transaction; a relay publishes them after the
// commit and deletes their rows.
//
//	db, _ := outbox.OpenSQLite("shop.db")        // or sql.Open("pgx", url)
//	ob, _ := outbox.New(db, outbox.Options{})    // creates its tables if missing
//	outbox.Attach(app, ob)                       // the relay runs with the app
//
//	tx, _ := db.BeginTx(ctx, nil)
//	tx.ExecContext(ctx, "INSERT INTO orders ...")
//	outbox.PublishTx(ctx, tx, OrderPlaced, OrderPlacedV1{ID: "7"})
//	tx.Commit()                                  // the order and its event, or neither
//
// The relay publishes within milliseconds of the commit (PostgreSQL
// LISTEN/NOTIFY; on SQLite a signal from PublishTx in this process) and
// polls every Options.PollInterval (1s) as a safety net. Delivery is at
// least once: a relay that dies after publishing and before deleting
// publishes those events again, with the same ids (brokers that
// deduplicate by id, such as NATS, drop the copies; the inbox skips them).
//
// # Order
//
// One relay per table publishes at a time, in the order of the rows' ids,
// one batch at a time, so:
//
//   - the events of one transaction are published in the order written;
//   - events with the same ordering key ([WithOrderingKey]) are published
//     in the order their transactions committed;
//   - other events of different transactions have no promised order.
//
// On SQLite, one writer at a time holds the database, so ids follow commit
// order anyway. On PostgreSQL they do not: a transaction can take id 5,
// another id 6 and commit first, and a relay that reads in between
// publishes 6 before 5. So PublishTx with an ordering key first takes a
// transaction-scoped advisory lock on the key: writers of one key take
// turns from their first outbox write to their commit, which makes their
// ids follow commit order. Writers of different keys do not wait for each
// other. Delayed events and events the broker refused ([Outbox.Rejected])
// leave the order: each goes out when due, or never.
//
// # Several relays
//
// Every process that attaches an outbox runs a relay; on one table, one
// publishes while the others wait, and one of them takes over at once if it
// dies. On PostgreSQL each batch runs in a transaction that first takes
// pg_try_advisory_xact_lock on the table's name, publishes, and deletes its
// rows; the lock ends with the transaction or the connection, so a killed
// relay frees it without any timeout. On SQLite the relay holds an flock(2)
// on a file beside the database ("<file>-<prefix>_outbox.relay-lock"),
// which the kernel releases when the process dies. No two relays ever
// publish the same row at the same time.
//
// # Inbox
//
// [Subscribe] is troupe.Subscribe for handlers that take the transaction:
// it begins one, records (subscription, event id) in the inbox table,
// runs the handler and commits. A redelivered event finds its record and
// is acknowledged without running the handler, so the handler's effects,
// and the events it publishes with PublishTx, happen exactly once. For
// handlers whose effects are not in this database, [Idempotent] with a
// [Store] skips events already handled, a weaker promise described there.
//
// # Delayed events and schedules
//
// [PublishAtTx] and [PublishAfterTx] (and [PublishAt], [PublishAfter],
// which use a transaction of their own) write events with a due time; the
// relay publishes them once Options.Clock reaches it. They are rows in the
// outbox table, so they survive restarts.
//
// [Outbox.Schedule] runs a function once per period of a spec such as
// "daily at 08:00 in Europe/Paris", "weekly on monday at 08:00", "monthly
// on 1 at 08:00" or "every 10m" ([ParseSpec]). The function runs in a
// transaction that inserts the row (schedule, period): with several
// instances, the first to insert runs the period, the others find the row
// and skip it.
//
// # Tables
//
// New creates, if missing, with Options.Prefix (default "troupe"):
//
//	troupe_outbox   events to relay: id, event attributes, data, ordering_key, due_at, rejected
//	troupe_inbox    (subscription, event_id) handled, with handled_at; pruned after InboxRetention
//	troupe_periods  (schedule, period) run, with fired_at; pruned after InboxRetention
//
// Published rows are deleted, so the outbox table holds only what waits.
//
// # Limits
//
// Each event's data is at most Options.MaxEventBytes (1 MiB). Throughput
// is that of one relay per table (see the benchmarks). SQLite suits one
// host: its relays exclude each other through a lock file, which does not
// work over network file systems. An in-memory SQLite database has no
// file to lock and is for single-process tests only.
package outbox
