package order

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/tally"
	"github.com/troupe-go/troupe/outbox"
)

// Order is an order as GET /orders/{id} shows it: what was ordered, where
// it stands, and the timeline of its business transaction.
type Order struct {
	ID         string    `json:"id"`
	Customer   string    `json:"customer,omitempty"`
	Restaurant string    `json:"restaurant,omitempty"`
	Items      []Item    `json:"items,omitempty"`
	TotalCents int64     `json:"total_cents"`
	Status     Status    `json:"status"`
	Terminal   bool      `json:"terminal"`
	PlacedAt   time.Time `json:"placed_at,omitzero"`
	// Conflict is set when the order heard both outcomes (confirmed and
	// cancelled): a broken choreography. It never happens in a sound run.
	Conflict bool `json:"conflict,omitempty"`
	// Timeline holds the order's events in causal order: each one's
	// CausationID is the ID of the one before it, and all share the order
	// id as CorrelationID.
	Timeline []TimelineEvent `json:"timeline"`
	Links    Links           `json:"links"`
}

// TimelineEvent is one event of an order's business transaction.
type TimelineEvent struct {
	Type string `json:"type"`
	// Service is the service that published the event.
	Service string    `json:"service"`
	Time    time.Time `json:"time"`
	// Attempt is the attempt of the handler that published the event.
	Attempt       int    `json:"attempt"`
	ID            string `json:"id"`
	CausationID   string `json:"causation_id,omitempty"`
	CorrelationID string `json:"correlation_id"`
	// Status is the status the event moves the order to.
	Status  Status `json:"status"`
	Summary string `json:"summary"`
}

// Links holds the URLs of an order's resources.
type Links struct {
	Self string `json:"self"`
}

// Summary is one order in the list of GET /orders.
type Summary struct {
	ID         string `json:"id"`
	Customer   string `json:"customer,omitempty"`
	Restaurant string `json:"restaurant,omitempty"`
	Status     Status `json:"status"`
	TotalCents int64  `json:"total_cents"`
	Links      Links  `json:"links"`
}

// Totals sums the read model: orders by status (count, by_status,
// terminal and stuck, as every example app's list reports them) and money
// by outcome, as the order service learnt them from events.
type Totals struct {
	tally.Counts
	// Conflicts counts orders that heard both outcomes.
	Conflicts int `json:"conflicts"`
	// PlacedCents is the value of every order; ConfirmedCents of those the
	// restaurant confirmed; CancelledCents of those it could not take.
	PlacedCents    int64 `json:"placed_cents"`
	ConfirmedCents int64 `json:"confirmed_cents"`
	CancelledCents int64 `json:"cancelled_cents"`
	// Duplicates counts events the read model ignored because it had an
	// event of the same type for the order already (an order published
	// twice under two event ids). Redeliveries of one event never get
	// this far: the inbox acknowledges them unread.
	Duplicates int `json:"duplicates_ignored"`
}

// schema is the order service's tables, beside its outbox's (order_outbox,
// order_inbox). Times are Unix nanoseconds, so an order reads back exactly
// as it was answered before a restart.
var schema = []string{
	// One row per order: what was ordered, and how far it got. status_rank
	// is the rank of status: a status only moves to a higher rank.
	`CREATE TABLE IF NOT EXISTS order_orders (
	id          TEXT PRIMARY KEY,
	customer    TEXT NOT NULL DEFAULT '',
	restaurant  TEXT NOT NULL DEFAULT '',
	items       TEXT NOT NULL DEFAULT '[]',
	total_cents BIGINT NOT NULL DEFAULT 0,
	status      TEXT NOT NULL,
	status_rank INTEGER NOT NULL,
	conflict    INTEGER NOT NULL DEFAULT 0,
	placed_ns   BIGINT NOT NULL DEFAULT 0,
	created_ns  BIGINT NOT NULL
)`,
	// Newest first, for GET /orders (with ?status, it scans newest first
	// until it has enough: an index on status would cost every event a
	// second index write).
	`CREATE INDEX IF NOT EXISTS order_orders_newest ON order_orders (created_ns, id)`,
	// One event per order and type: the timeline.
	`CREATE TABLE IF NOT EXISTS order_timeline (
	order_id       TEXT NOT NULL,
	type           TEXT NOT NULL,
	service        TEXT NOT NULL,
	at_ns          BIGINT NOT NULL,
	attempt        INTEGER NOT NULL,
	event_id       TEXT NOT NULL,
	causation_id   TEXT NOT NULL,
	correlation_id TEXT NOT NULL,
	status         TEXT NOT NULL,
	summary        TEXT NOT NULL,
	PRIMARY KEY (order_id, type)
)`,
	// Events of a type the order had already, under another event id.
	`CREATE TABLE IF NOT EXISTS order_duplicates (
	event_id TEXT PRIMARY KEY,
	order_id TEXT NOT NULL,
	type     TEXT NOT NULL
)`,
	// The Idempotency-Keys of POST /orders, with a fingerprint of the
	// order each one placed.
	`CREATE TABLE IF NOT EXISTS order_keys (
	customer    TEXT NOT NULL,
	idem_key    TEXT NOT NULL,
	order_id    TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	PRIMARY KEY (customer, idem_key)
)`,
}

// readModel is the order service's view of every order, built from the
// orders it accepts and the events of their transactions, and stored in
// the service's database: a restarted process answers as before. Its
// writes run in the inbox's transaction of each event (or the POST's), so
// each event is applied once. Subscriptions run concurrently and in any
// order, so it keeps one event per type and order, sorts each timeline
// back into causal order when read, and never moves a status backwards.
type readModel struct {
	ob *outbox.Outbox
}

func (m *readModel) q(query string) string { return store.Q(m.ob, query) }

// db returns the database, or outbox.ErrNotOpen.
func (m *readModel) db() (*sql.DB, error) {
	if db := m.ob.DB(); db != nil {
		return db, nil
	}
	return nil, outbox.ErrNotOpen
}

// ensure creates the row of order id unless it exists: the first news of
// an order may be one of its events.
func (m *readModel) ensure(ctx context.Context, tx *sql.Tx, id string) error {
	_, err := tx.ExecContext(ctx, m.q(`INSERT INTO order_orders (id, status, status_rank, created_ns)
		VALUES (?, ?, 0, ?) ON CONFLICT (id) DO NOTHING`), id, StatusPlaced, time.Now().UnixNano())
	return err
}

// fill records what order p.OrderID is, unless its row knows already.
func (m *readModel) fill(ctx context.Context, tx *sql.Tx, p PlacedV1, at time.Time) error {
	items, err := json.Marshal(p.Items)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, m.q(`UPDATE order_orders SET customer = ?, restaurant = ?, items = ?, total_cents = ?, placed_ns = ?
		WHERE id = ? AND customer = ''`), p.Customer, p.Restaurant, string(items), p.TotalCents, at.UnixNano(), p.OrderID)
	return err
}

// place records an order accepted over HTTP, in the transaction that
// publishes its event, so a GET right after the POST finds it.
func (m *readModel) place(ctx context.Context, tx *sql.Tx, p PlacedV1, at time.Time) error {
	if err := m.ensure(ctx, tx, p.OrderID); err != nil {
		return err
	}
	return m.fill(ctx, tx, p, at)
}

// errKeyReused is the answer to an Idempotency-Key that placed another order.
var errKeyReused = errors.New("this Idempotency-Key was used for a different order; use a new key for a new order")

// claimKey records customer's Idempotency-Key key for the order of
// fingerprint fp in tx, and reports whether the key is new. A key seen
// before with the same order reports false (answer as before); with
// another order it fails with errKeyReused. Two requests with one key at
// once take turns on the key's row: the second sees the first's outcome.
func (m *readModel) claimKey(ctx context.Context, tx *sql.Tx, customer, key, orderID, fp string) (bool, error) {
	res, err := tx.ExecContext(ctx, m.q(`INSERT INTO order_keys (customer, idem_key, order_id, fingerprint)
		VALUES (?, ?, ?, ?) ON CONFLICT (customer, idem_key) DO NOTHING`), customer, key, orderID, fp)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return n == 1, err
	}
	var got string
	if err := tx.QueryRowContext(ctx, m.q(`SELECT fingerprint FROM order_keys WHERE customer = ? AND idem_key = ?`), customer, key).Scan(&got); err != nil {
		return false, err
	}
	if got != fp {
		return false, errKeyReused
	}
	return false, nil
}

// apply adds ev to order id's timeline and moves its status, in the
// event's inbox transaction. placed, when not nil, fills in what was
// ordered.
func (m *readModel) apply(ctx context.Context, tx *sql.Tx, id string, ev TimelineEvent, placed *PlacedV1) error {
	// One event per type: a second one is a duplicate from upstream (an
	// order published twice under two event ids), which the services
	// downstream ignore as well.
	res, err := tx.ExecContext(ctx, m.q(`INSERT INTO order_timeline
		(order_id, type, service, at_ns, attempt, event_id, causation_id, correlation_id, status, summary)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id, type) DO NOTHING`),
		id, ev.Type, ev.Service, ev.Time.UnixNano(), ev.Attempt, ev.ID, ev.CausationID, ev.CorrelationID, ev.Status, ev.Summary)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		_, err := tx.ExecContext(ctx, m.q(`INSERT INTO order_duplicates (event_id, order_id, type) VALUES (?, ?, ?)
			ON CONFLICT (event_id) DO NOTHING`), ev.ID, id, ev.Type)
		return err
	}
	// The order's row, made if this is the first news of the order, with
	// its status moved: one statement, so that concurrent events of one
	// order (on PostgreSQL) each see the other's status: the row lock
	// orders them, and the right-hand sides read the row as the statement
	// finds it.
	other := ev.Status.otherPath()
	r := rank[ev.Status]
	_, err = tx.ExecContext(ctx, m.q(`INSERT INTO order_orders (id, status, status_rank, created_ns) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			conflict    = CASE WHEN order_orders.status IN (?, ?) THEN 1 ELSE order_orders.conflict END,
			status      = CASE WHEN order_orders.status_rank < excluded.status_rank THEN excluded.status ELSE order_orders.status END,
			status_rank = CASE WHEN order_orders.status_rank < excluded.status_rank THEN excluded.status_rank ELSE order_orders.status_rank END`),
		id, ev.Status, r, time.Now().UnixNano(), other[0], other[1])
	if err != nil || placed == nil {
		return err
	}
	return m.fill(ctx, tx, *placed, ev.Time)
}

// get returns order id, and false when there is none.
func (m *readModel) get(ctx context.Context, id string) (Order, bool, error) {
	db, err := m.db()
	if err != nil {
		return Order{}, false, err
	}
	o := Order{ID: id, Timeline: []TimelineEvent{}, Links: Links{Self: orderPath(id)}}
	var items string
	var conflict int
	var placedNS int64
	err = db.QueryRowContext(ctx, m.q(`SELECT customer, restaurant, items, total_cents, status, conflict, placed_ns
		FROM order_orders WHERE id = ?`), id).Scan(&o.Customer, &o.Restaurant, &items, &o.TotalCents, &o.Status, &conflict, &placedNS)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, false, nil
	}
	if err != nil {
		return Order{}, false, err
	}
	if err := json.Unmarshal([]byte(items), &o.Items); err != nil {
		return Order{}, false, fmt.Errorf("order %s: items: %w", id, err)
	}
	if len(o.Items) == 0 {
		o.Items = nil
	}
	o.Terminal, o.Conflict = o.Status.Terminal(), conflict != 0
	if placedNS != 0 {
		o.PlacedAt = time.Unix(0, placedNS).UTC()
	}
	rows, err := db.QueryContext(ctx, m.q(`SELECT type, service, at_ns, attempt, event_id, causation_id, correlation_id, status, summary
		FROM order_timeline WHERE order_id = ?`), id)
	if err != nil {
		return Order{}, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var ev TimelineEvent
		var at int64
		if err := rows.Scan(&ev.Type, &ev.Service, &at, &ev.Attempt, &ev.ID, &ev.CausationID, &ev.CorrelationID, &ev.Status, &ev.Summary); err != nil {
			return Order{}, false, err
		}
		ev.Time = time.Unix(0, at).UTC()
		o.Timeline = append(o.Timeline, ev)
	}
	if err := rows.Err(); err != nil {
		return Order{}, false, err
	}
	slices.SortStableFunc(o.Timeline, func(a, b TimelineEvent) int {
		return cmp.Or(cmp.Compare(rank[a.Status], rank[b.Status]), a.Time.Compare(b.Time), cmp.Compare(a.Type, b.Type))
	})
	return o, true, nil
}

// list returns the totals and up to limit orders with status (any status
// when empty), newest first.
func (m *readModel) list(ctx context.Context, status Status, limit int) (Totals, []Summary, error) {
	db, err := m.db()
	if err != nil {
		return Totals{}, nil, err
	}
	t := Totals{Counts: tally.Counts{ByStatus: make(map[string]int)}}
	rows, err := db.QueryContext(ctx, `SELECT status, count(*), coalesce(sum(total_cents), 0), coalesce(sum(conflict), 0)
		FROM order_orders GROUP BY status`)
	if err != nil {
		return Totals{}, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var s Status
		var n, conflicts int
		var cents int64
		if err := rows.Scan(&s, &n, &cents, &conflicts); err != nil {
			return Totals{}, nil, err
		}
		t.Add(string(s), n, s.Terminal())
		t.Conflicts += conflicts
		t.PlacedCents += cents
		switch {
		case s.success():
			t.ConfirmedCents += cents
		case s.compensation():
			t.CancelledCents += cents
		}
	}
	if err := rows.Err(); err != nil {
		return Totals{}, nil, err
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM order_duplicates`).Scan(&t.Duplicates); err != nil {
		return Totals{}, nil, err
	}

	query, args := `SELECT id, customer, restaurant, status, total_cents FROM order_orders`, []any{}
	if status != "" {
		query += ` WHERE status = ?`
		args = append(args, status)
	}
	query += ` ORDER BY created_ns DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err = db.QueryContext(ctx, m.q(query), args...)
	if err != nil {
		return Totals{}, nil, err
	}
	defer rows.Close()
	out := []Summary{}
	for rows.Next() {
		var s Summary
		if err := rows.Scan(&s.ID, &s.Customer, &s.Restaurant, &s.Status, &s.TotalCents); err != nil {
			return Totals{}, nil, err
		}
		s.Links = Links{Self: orderPath(s.ID)}
		out = append(out, s)
	}
	return t, out, rows.Err()
}

func orderPath(id string) string { return "/orders/" + url.PathEscape(id) }
