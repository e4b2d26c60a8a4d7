package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// PublishTx writes events of topic t into the outbox inside tx. They are
// published when, and only if, tx commits: the relay picks them up within
// milliseconds (PostgreSQL NOTIFY, or this process's signal on SQLite) or
// at its next poll. A rolled-back tx publishes nothing.
//
// The events get the ids, correlation and causation ids troupe.Publish
// would give them in ctx: inside a handler, ids derived from the handled
// event, so a retried handler writes the same ids. ctx must carry an app
// whose outbox was set with [Attach] (or an outbox, as handlers of
// [Subscribe] do), and the app must be started.
//
// Events of one tx are published in the order written. Events of
// different transactions that share an ordering key ([WithOrderingKey])
// are published in commit order; see the package documentation for what
// that costs on PostgreSQL. Other events of different transactions have no
// order.
//
// It fails with [ErrNilTx], [ErrNoOutbox], [ErrTooLarge] (data larger than
// Options.MaxEventBytes), the errors of troupe.Encode (troupe.ErrNotStarted,
// troupe.ErrUndeclaredTopic, troupe.ErrEncode), or the database's error.
// After an error, the events written so far are still in tx: roll it back.
// Nothing is ever written for a value that fails to encode or is too large,
// because every value is checked first.
func PublishTx[T any](ctx context.Context, tx *sql.Tx, t *troupe.Topic[T], vs ...T) error {
	return publishTx(ctx, tx, t, vs, func(*Outbox) int64 { return 0 })
}

// PublishAtTx is [PublishTx] for events that must not be published before
// at: the relay publishes them once its clock (Options.Clock) reaches at.
// They wait in the outbox table, so they survive restarts. A time in the
// past publishes at once. Delayed events are not ordered with the other
// events of their ordering key: each goes out when due.
func PublishAtTx[T any](ctx context.Context, tx *sql.Tx, at time.Time, t *troupe.Topic[T], vs ...T) error {
	return publishTx(ctx, tx, t, vs, func(*Outbox) int64 { return max(at.UnixMicro(), 1) })
}

// PublishAfterTx is [PublishAtTx] at the outbox clock's now plus d.
func PublishAfterTx[T any](ctx context.Context, tx *sql.Tx, d time.Duration, t *troupe.Topic[T], vs ...T) error {
	return publishTx(ctx, tx, t, vs, func(ob *Outbox) int64 { return max(ob.clock.Now().Add(d).UnixMicro(), 1) })
}

// PublishAt is [PublishAtTx] in a transaction of its own on the outbox's
// database, for delayed events that go with no other write. It fails as
// PublishAtTx does, or with the error of the commit; then nothing is
// stored.
func PublishAt[T any](ctx context.Context, at time.Time, t *troupe.Topic[T], vs ...T) error {
	return ownTx(ctx, func(tx *sql.Tx) error { return PublishAtTx(ctx, tx, at, t, vs...) })
}

// PublishAfter is [PublishAfterTx] in a transaction of its own, as
// [PublishAt].
func PublishAfter[T any](ctx context.Context, d time.Duration, t *troupe.Topic[T], vs ...T) error {
	return ownTx(ctx, func(tx *sql.Tx) error { return PublishAfterTx(ctx, tx, d, t, vs...) })
}

func ownTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	ob, _, err := outboxOf(ctx)
	if err != nil {
		return err
	}
	tx, err := ob.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: commit: %w", err)
	}
	ob.Wake()
	return nil
}

type orderingKey struct{}

// WithOrderingKey returns ctx whose outbox publishes carry key: events of
// one key are published in the order their transactions committed. Use an
// aggregate's id ("order-7"). The empty key, the default, means no order
// across transactions.
func WithOrderingKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, orderingKey{}, key)
}

func publishTx[T any](ctx context.Context, tx *sql.Tx, t *troupe.Topic[T], vs []T, due func(*Outbox) int64) error {
	if tx == nil {
		return ErrNilTx
	}
	if t == nil {
		return fmt.Errorf("outbox: nil topic")
	}
	ob, _, err := outboxOf(ctx)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return nil
	}
	msgs, err := troupe.Encode(ctx, t, vs...)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	key, _ := ctx.Value(orderingKey{}).(string)
	return ob.write(ctx, tx, msgs, due(ob), key)
}

// insertChunk bounds the rows of one INSERT, under SQLite's limit of
// 32766 bound parameters.
const insertChunk = 500

const outboxColumns = 13

// write inserts msgs into the outbox table in tx.
func (ob *Outbox) write(ctx context.Context, tx *sql.Tx, msgs []*transport.Message, due int64, key string) error {
	for _, m := range msgs {
		if len(m.Data) > ob.opts.MaxEventBytes {
			return fmt.Errorf("outbox: event %s of %s has %d bytes of data, more than Options.MaxEventBytes (%d): %w",
				m.ID, m.Type, len(m.Data), ob.opts.MaxEventBytes, ErrTooLarge)
		}
	}
	var okey any
	if key != "" {
		okey = key
		if ob.d == Postgres {
			// Writers of one key take turns until they commit, so that
			// the ids of one key's rows follow their commit order; see
			// the package documentation.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", ob.t.channel, key); err != nil {
				return fmt.Errorf("outbox: lock ordering key %q: %w", key, err)
			}
		}
	}
	for start := 0; start < len(msgs); start += insertChunk {
		chunk := msgs[start:min(start+insertChunk, len(msgs))]
		q := "INSERT INTO " + ob.t.outbox + " (event_id, type, source, event_time, correlation_id, causation_id, traceparent, content_type, extensions, data, ordering_key, due_at, rejected) VALUES "
		args := make([]any, 0, len(chunk)*outboxColumns)
		for k, m := range chunk {
			if k > 0 {
				q += ","
			}
			q += "(" + ob.phs(k*outboxColumns+1, outboxColumns) + ")"
			var ext any
			if len(m.Extensions) > 0 {
				b, err := json.Marshal(m.Extensions)
				if err != nil {
					return fmt.Errorf("outbox: extensions of event %s: %w", m.ID, err)
				}
				ext = string(b)
			}
			data := m.Data
			if data == nil {
				data = []byte{}
			}
			args = append(args, m.ID, m.Type, m.Source, m.Time.UnixNano(), m.CorrelationID, m.CausationID,
				m.TraceParent, m.DataContentType, ext, data, okey, due, nil)
		}
		if ob.d == Postgres && start+insertChunk >= len(msgs) {
			// The last insert also notifies the relays, saving a round
			// trip. The notification is delivered when tx commits, and not
			// at all if it rolls back; those of one tx are merged.
			args = append(args, ob.t.channel)
			q = "WITH ins AS (" + q + " RETURNING 1) SELECT pg_notify(" + ob.ph(len(args)) + ", '')"
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("outbox: write %d events: %w", len(chunk), err)
		}
	}
	if ob.d == SQLite {
		ob.Wake()
	}
	return nil
}
