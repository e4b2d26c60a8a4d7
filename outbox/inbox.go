package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/troupe-go/troupe"
)

// TxHandler handles one event inside a database transaction that the
// inbox opened and commits. Write the handler's effects with tx, and
// publish with [PublishTx] using ctx and tx: the effects, the events and
// the record that the event was handled commit together, or not at all.
// Returning an error rolls all of it back and the event is retried as with
// troupe.Handler. Do not commit or roll back tx yourself.
type TxHandler[T any] func(ctx context.Context, tx *sql.Tx, ev troupe.Event[T]) error

// Subscribe is troupe.Subscribe for an idempotent consumer (an inbox):
// each delivery runs h in a transaction of ob's database that first
// records (subscription, event id) in the inbox table. A delivery of an
// event the subscription already handled finds the record, rolls back and
// is acknowledged without calling h; so, with the broker's at-least-once
// delivery, each event's effects and published events happen exactly once,
// including when the process dies between the commit and the broker's
// acknowledgement.
//
// Two deliveries of one event at the same time (a lease that ran out) are
// serialized by the database: the second waits for the first to commit
// and is then skipped, or runs if the first rolled back.
//
// The record is kept for Options.InboxRetention (default 7 days). Errors
// from beginning or committing the transaction are returned like the
// handler's, so the broker retries. opts are troupe's subscription options.
//
// A nil ob or h panics: it is a programming mistake, caught at declaration.
func Subscribe[T any](s *troupe.Service, t *troupe.Topic[T], name string, ob *Outbox, h TxHandler[T], opts ...troupe.SubscribeOption) *troupe.Subscription {
	if ob == nil || h == nil {
		panic("outbox: Subscribe " + name + ": nil outbox or handler")
	}
	return troupe.Subscribe(s, t, name, func(ctx context.Context, ev troupe.Event[T]) error {
		return ob.handleOnce(ctx, ev.Subscription, ev.ID, func(ctx context.Context, tx *sql.Tx) error {
			return h(ctx, tx, ev)
		})
	}, opts...)
}

// handleOnce runs fn in a transaction that records (sub, id), unless the
// record exists.
func (ob *Outbox) handleOnce(ctx context.Context, sub, id string, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if ob.db == nil {
		return ErrNotOpen
	}
	tx, err := ob.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: inbox: begin: %w", err)
	}
	defer tx.Rollback()
	first, err := ob.record(ctx, tx, sub, id)
	if err != nil {
		return err
	}
	if !first {
		ob.log.Debug("outbox: inbox skips an event already handled", "subscription", sub, "id", id)
		return nil
	}
	if err := fn(WithOutbox(ctx, ob), tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: inbox: commit: %w", err)
	}
	ob.Wake()
	return nil
}

// record inserts the inbox row in tx and reports whether it is new.
func (ob *Outbox) record(ctx context.Context, tx *sql.Tx, sub, id string) (bool, error) {
	res, err := tx.ExecContext(ctx, "INSERT INTO "+ob.t.inbox+" (subscription, event_id, handled_at) VALUES ("+
		ob.phs(1, 3)+") ON CONFLICT DO NOTHING", sub, id, ob.clock.Now().UnixMicro())
	if err != nil {
		return false, fmt.Errorf("outbox: inbox: record %s %s: %w", sub, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("outbox: inbox: %w", err)
	}
	return n == 1, nil
}

// Store remembers which events a subscription handled, for [Idempotent].
// Implementations must be safe for concurrent use. *Outbox is one (its
// inbox table); [MemoryStore] is another.
type Store interface {
	// Seen reports whether sub has handled the event id.
	Seen(ctx context.Context, sub, id string) (bool, error)
	// Mark records that sub has handled the event id.
	Mark(ctx context.Context, sub, id string) error
}

// Idempotent wraps a plain handler so that an event its subscription
// already handled is acknowledged without calling h. It asks store before
// h runs and marks the event after h returns nil.
//
// The guarantee is weaker than [Subscribe]'s, because the mark and h's
// effects do not commit together: a crash (or a failing Mark) after h
// succeeded repeats h on redelivery, and two deliveries of one event at the
// same moment can both run h. It removes the common duplicates (a
// redelivery after the handler finished, a publisher's retry) for handlers
// whose effects are not in a SQL database. A store error is returned, so
// the broker retries.
func Idempotent[T any](store Store, h troupe.Handler[T]) troupe.Handler[T] {
	return func(ctx context.Context, ev troupe.Event[T]) error {
		seen, err := store.Seen(ctx, ev.Subscription, ev.ID)
		if err != nil {
			return fmt.Errorf("outbox: idempotent: %w", err)
		}
		if seen {
			return nil
		}
		if err := h(ctx, ev); err != nil {
			return err
		}
		if err := store.Mark(ctx, ev.Subscription, ev.ID); err != nil {
			return fmt.Errorf("outbox: idempotent: the handler succeeded but its event could not be marked (it will run again): %w", err)
		}
		return nil
	}
}

// Seen reports whether the inbox table records that sub handled id.
func (ob *Outbox) Seen(ctx context.Context, sub, id string) (bool, error) {
	if ob.db == nil {
		return false, ErrNotOpen
	}
	var n int
	err := ob.db.QueryRowContext(ctx, "SELECT count(*) FROM "+ob.t.inbox+" WHERE subscription = "+ob.ph(1)+" AND event_id = "+ob.ph(2), sub, id).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("outbox: inbox: %w", err)
	}
	return n > 0, nil
}

// Mark records in the inbox table that sub handled id, in a transaction
// of its own. Marking twice is not an error.
func (ob *Outbox) Mark(ctx context.Context, sub, id string) error {
	if ob.db == nil {
		return ErrNotOpen
	}
	_, err := ob.db.ExecContext(ctx, "INSERT INTO "+ob.t.inbox+" (subscription, event_id, handled_at) VALUES ("+
		ob.phs(1, 3)+") ON CONFLICT DO NOTHING", sub, id, ob.clock.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("outbox: inbox: mark %s %s: %w", sub, id, err)
	}
	return nil
}

// MemoryStore is a [Store] in memory, bounded: it forgets the oldest
// records beyond its limit. It is lost with the process, so it only
// removes duplicates that arrive while the process lives; use it for tests
// and for effects that tolerate a rare repeat.
type MemoryStore struct {
	mu    sync.Mutex
	limit int
	seen  map[string]struct{}
	order []string
}

// DefaultMemoryStoreLimit is the number of records a [MemoryStore] keeps
// when NewMemoryStore is given no positive limit.
const DefaultMemoryStoreLimit = 100_000

// NewMemoryStore returns a store that keeps the last limit records
// (default [DefaultMemoryStoreLimit] when limit <= 0).
func NewMemoryStore(limit int) *MemoryStore {
	if limit <= 0 {
		limit = DefaultMemoryStoreLimit
	}
	return &MemoryStore{limit: limit, seen: make(map[string]struct{})}
}

// Seen implements [Store]; it never fails.
func (s *MemoryStore) Seen(_ context.Context, sub, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seen[sub+"\x00"+id]
	return ok, nil
}

// Mark implements [Store]; it never fails.
func (s *MemoryStore) Mark(_ context.Context, sub, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sub + "\x00" + id
	if _, ok := s.seen[k]; ok {
		return nil
	}
	s.seen[k] = struct{}{}
	s.order = append(s.order, k)
	if len(s.order) > s.limit {
		delete(s.seen, s.order[0])
		s.order = s.order[1:]
	}
	return nil
}
