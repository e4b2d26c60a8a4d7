package orders

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/tally"
	"github.com/troupe-go/troupe/outbox"
)

// Order is an order as GET /orders/{id} shows it: what was ordered, how far
// it has come, why it was cancelled, and the events of its business
// transaction so far.
type Order struct {
	ID       string `json:"id"`
	Customer string `json:"customer,omitempty"`
	Lines    []Line `json:"lines,omitempty"`
	Total    Money  `json:"total,omitzero"`
	Status   Status `json:"status"`
	// Terminal reports that the order has ended (notified or cancelled).
	Terminal bool `json:"terminal"`
	// Reason says why the order left its success path, from the first
	// failure event it heard ("out of stock: …"); empty otherwise.
	Reason   string    `json:"reason,omitempty"`
	PlacedAt time.Time `json:"placed_at,omitzero"`
	// Events are in causal order: each one's CausationID is the ID of the one
	// before it, the first has none, and all share the order id as
	// CorrelationID.
	Events []TimelineEvent `json:"events"`
	Links  Links           `json:"links"`
}

// TimelineEvent is one event of an order's business transaction, with the
// envelope attributes that tie it to the others.
type TimelineEvent struct {
	Type          string    `json:"type"`
	ID            string    `json:"id"`
	CausationID   string    `json:"causation_id,omitempty"`
	CorrelationID string    `json:"correlation_id"`
	Source        string    `json:"source"`
	Time          time.Time `json:"time"`
	// Status is the status the event moves the order to.
	Status Status `json:"status"`
	// Summary says what happened, as the publishing service describes it.
	Summary string `json:"summary"`
}

// Links holds the URLs of an order's resources.
type Links struct {
	Self string `json:"self"`
}

// OrderSummary is one order in the list of GET /orders.
type OrderSummary struct {
	ID       string `json:"id"`
	Customer string `json:"customer,omitempty"`
	Status   Status `json:"status"`
	Links    Links  `json:"links"`
}

// List is the body of GET /orders.
type List struct {
	// Count, ByStatus, Terminal and Stuck: every example app's list
	// reports them alike. Once the shop is idle, Stuck is 0.
	tally.Counts
	// PlacedCents is what every order is worth; ShippedCents what the
	// shipped ones are worth (the money the shop keeps: the gateway's
	// net_cents at GET /ledger must equal it once Stuck is 0), and
	// CancelledCents what the cancelled ones were worth.
	PlacedCents    int64 `json:"placed_cents"`
	ShippedCents   int64 `json:"shipped_cents"`
	CancelledCents int64 `json:"cancelled_cents"`
	Stats
	// Orders are the newest, up to 100.
	Orders []OrderSummary `json:"orders"`
}

// Stats counts what the read model heard beyond one delivery of each
// event, since this process started (they are counters in memory, not
// state). Delivery is at least once, so neither needs to be zero.
type Stats struct {
	// Duplicates counts deliveries of an event already in its order's
	// timeline, which changed nothing.
	Duplicates int64 `json:"duplicates_ignored"`
	// Redeliveries counts deliveries the broker marked as a later attempt.
	Redeliveries int64 `json:"redeliveries"`
}

// schema is the read model's tables. An order's row is written when it is
// placed, in the transaction that also writes its order_placed event to
// the outbox; each later event adds a row to the timeline and moves the
// order's status forward, in one transaction.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS orders_orders (
	id           TEXT PRIMARY KEY,
	customer     TEXT NOT NULL,
	lines        TEXT NOT NULL,
	total_cents  BIGINT NOT NULL,
	currency     TEXT NOT NULL,
	status       TEXT NOT NULL,
	status_rank  INTEGER NOT NULL,
	reason       TEXT NOT NULL DEFAULT '',
	placed_us    BIGINT NOT NULL,
	idem_key     TEXT UNIQUE,
	request_hash TEXT NOT NULL DEFAULT ''
)`,
	`CREATE INDEX IF NOT EXISTS orders_orders_placed ON orders_orders (placed_us)`,
	`CREATE TABLE IF NOT EXISTS orders_events (
	order_id       TEXT NOT NULL,
	event_id       TEXT NOT NULL,
	type           TEXT NOT NULL,
	causation_id   TEXT NOT NULL,
	correlation_id TEXT NOT NULL,
	source         TEXT NOT NULL,
	at_us          BIGINT NOT NULL,
	status         TEXT NOT NULL,
	status_rank    INTEGER NOT NULL,
	summary        TEXT NOT NULL,
	PRIMARY KEY (order_id, event_id)
)`,
}

// readModel is the orders service's view of every order, in its database.
// Delivery is at least once and the subscriptions run concurrently, so it
// ignores an event it has already applied and never moves an order's
// status backwards.
type readModel struct {
	ob    *outbox.Outbox
	dups  atomic.Int64
	redel atomic.Int64
}

// errKeyReused means an Idempotency-Key came back with another order.
var errKeyReused = errors.New("this Idempotency-Key was used for a different order; send a new key for a new order")

// place records order p, with id set, and writes its order_placed event to
// the outbox, in one transaction: the event is published if and only if
// the order is stored. With an idempotency key already used for the same
// order, it stores nothing and returns the id of the first; with a key used
// for another order (fingerprint differs), errKeyReused.
func (m *readModel) place(ctx context.Context, p PlacedV1, key, fingerprint string, at time.Time) (id string, created bool, err error) {
	if key != "" {
		if id, err := m.byKey(ctx, key, fingerprint); err != nil || id != "" {
			return id, false, err
		}
	}
	db := m.ob.DB()
	lines, err := json.Marshal(p.Lines)
	if err != nil {
		return "", false, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return "", false, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, store.Q(m.ob, `INSERT INTO orders_orders
		(id, customer, lines, total_cents, currency, status, status_rank, placed_us, idem_key, request_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		p.OrderID, p.Customer, string(lines), p.Total.Cents, p.Total.Currency, StatusPlaced, statusRank[StatusPlaced],
		at.UnixMicro(), sql.NullString{String: key, Valid: key != ""}, fingerprint)
	if err != nil {
		return "", false, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", false, err
	} else if n == 0 {
		// Another request with the same key got there first (or, once in
		// 2^48, the same random id).
		tx.Rollback()
		if key == "" {
			return "", false, fmt.Errorf("order id %s taken", p.OrderID)
		}
		id, err := m.byKey(ctx, key, fingerprint)
		return id, false, err
	}
	pctx := outbox.WithOutbox(troupe.WithCorrelationID(ctx, p.OrderID), m.ob)
	if err := outbox.PublishTx(pctx, tx, Placed, p); err != nil {
		return "", false, err
	}
	if err := tx.Commit(); err != nil {
		return "", false, err
	}
	return p.OrderID, true, nil
}

// byKey returns the id of the order placed with key, "" if none, or
// errKeyReused when that order's fingerprint differs.
func (m *readModel) byKey(ctx context.Context, key, fingerprint string) (string, error) {
	var id, hash string
	err := m.ob.DB().QueryRowContext(ctx, store.Q(m.ob, `SELECT id, request_hash FROM orders_orders WHERE idem_key = ?`), key).Scan(&id, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", err
	case hash != fingerprint:
		return "", errKeyReused
	}
	return id, nil
}

// apply adds ev to the timeline of order id and moves its status forward to
// ev.Status, in one transaction. placed, when not nil, fills in what was
// ordered; reason, when not empty, is the order's reason unless it has one.
// An event id already in the timeline changes nothing but the count of
// duplicates, so a redelivery is harmless. attempt is the delivery's
// attempt number, from 1.
func (m *readModel) apply(ctx context.Context, id string, ev TimelineEvent, placed *PlacedV1, reason string, attempt int) error {
	if attempt > 1 {
		m.redel.Add(1)
	}
	db := m.ob.DB()
	if db == nil {
		return outbox.ErrNotOpen
	}
	rank := statusRank[ev.Status]
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, store.Q(m.ob, `INSERT INTO orders_events
		(order_id, event_id, type, causation_id, correlation_id, source, at_us, status, status_rank, summary)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		id, ev.ID, ev.Type, ev.CausationID, ev.CorrelationID, ev.Source, ev.Time.UnixMicro(), ev.Status, rank, ev.Summary)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		m.dups.Add(1)
		return nil
	}
	res, err = tx.ExecContext(ctx, store.Q(m.ob, `UPDATE orders_orders SET
		status = CASE WHEN status_rank < ? THEN ? ELSE status END,
		status_rank = CASE WHEN status_rank < ? THEN ? ELSE status_rank END,
		reason = CASE WHEN reason = '' THEN ? ELSE reason END
		WHERE id = ?`), rank, ev.Status, rank, rank, reason, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		// An event of an order this database never stored (it was lost or
		// replaced): the order is made from what its events tell.
		_, err = tx.ExecContext(ctx, store.Q(m.ob, `INSERT INTO orders_orders
			(id, customer, lines, total_cents, currency, status, status_rank, reason, placed_us)
			VALUES (?, '', 'null', 0, '', ?, ?, ?, ?)`), id, ev.Status, rank, reason, ev.Time.UnixMicro())
		if err != nil {
			return err
		}
	}
	if placed != nil {
		lines, err := json.Marshal(placed.Lines)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, store.Q(m.ob, `UPDATE orders_orders SET customer = ?, lines = ?, total_cents = ?, currency = ?
			WHERE id = ? AND customer = ''`), placed.Customer, string(lines), placed.Total.Cents, placed.Total.Currency, id)
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

// get returns order id, and false if there is none.
func (m *readModel) get(ctx context.Context, id string) (Order, bool, error) {
	db := m.ob.DB()
	o := Order{ID: id, Events: []TimelineEvent{}, Links: Links{Self: orderPath(id)}}
	var lines string
	var placedUS int64
	err := db.QueryRowContext(ctx, store.Q(m.ob, `SELECT customer, lines, total_cents, currency, status, reason, placed_us
		FROM orders_orders WHERE id = ?`), id).
		Scan(&o.Customer, &lines, &o.Total.Cents, &o.Total.Currency, &o.Status, &o.Reason, &placedUS)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, false, nil
	}
	if err != nil {
		return Order{}, false, err
	}
	if err := json.Unmarshal([]byte(lines), &o.Lines); err != nil {
		return Order{}, false, fmt.Errorf("order %s: lines: %w", id, err)
	}
	o.PlacedAt = time.UnixMicro(placedUS).UTC()
	o.Terminal = o.Status.Terminal()
	// Steps happen one after the other, so sorting by the step each event
	// stands for restores the causal order whatever the arrival order was.
	rows, err := db.QueryContext(ctx, store.Q(m.ob, `SELECT type, event_id, causation_id, correlation_id, source, at_us, status, summary
		FROM orders_events WHERE order_id = ? ORDER BY status_rank, at_us, event_id`), id)
	if err != nil {
		return Order{}, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var ev TimelineEvent
		var at int64
		if err := rows.Scan(&ev.Type, &ev.ID, &ev.CausationID, &ev.CorrelationID, &ev.Source, &at, &ev.Status, &ev.Summary); err != nil {
			return Order{}, false, err
		}
		ev.Time = time.UnixMicro(at).UTC()
		o.Events = append(o.Events, ev)
	}
	return o, true, rows.Err()
}

// list counts the orders by status and sums what they are worth, and
// returns up to limit of them, newest first.
func (m *readModel) list(ctx context.Context, limit int) (List, error) {
	db := m.ob.DB()
	l := List{Counts: tally.Counts{ByStatus: map[string]int{}}, Orders: []OrderSummary{}}
	rows, err := db.QueryContext(ctx, `SELECT status, count(*), CAST(coalesce(sum(total_cents), 0) AS BIGINT)
		FROM orders_orders GROUP BY status`)
	if err != nil {
		return List{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var s Status
		var n int
		var cents int64
		if err := rows.Scan(&s, &n, &cents); err != nil {
			return List{}, err
		}
		l.Add(string(s), n, s.Terminal())
		l.PlacedCents += cents
		switch {
		case s.shipped():
			l.ShippedCents += cents
		case s == StatusCancelled:
			l.CancelledCents += cents
		}
	}
	if err := rows.Err(); err != nil {
		return List{}, err
	}
	rows, err = db.QueryContext(ctx, store.Q(m.ob, `SELECT id, customer, status FROM orders_orders
		ORDER BY placed_us DESC, id DESC LIMIT ?`), limit)
	if err != nil {
		return List{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var o OrderSummary
		if err := rows.Scan(&o.ID, &o.Customer, &o.Status); err != nil {
			return List{}, err
		}
		o.Links = Links{Self: orderPath(o.ID)}
		l.Orders = append(l.Orders, o)
	}
	l.Stats = Stats{Duplicates: m.dups.Load(), Redeliveries: m.redel.Load()}
	return l, rows.Err()
}

func orderPath(id string) string { return "/orders/" + id }
