// Package gateway plays the payment provider of the example apps: an
// outside system that moves customers' money and keeps its own books, in
// a database of its own (gateway.db in the data directory, or the
// gateway_ tables on PostgreSQL), so that what it did survives the
// services' crashes and restarts, and a second charge is there to be
// counted.
//
// Like real providers, it takes an idempotency key with every request: a
// request with a key it has seen moves no money and answers as the first
// did. A service that sends one key per order and operation (the order id
// and "charge") cannot charge twice, whatever its retries, redeliveries and
// crashes; one that sends a new key each time can, and [Books] shows it.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
)

// Kinds of money movement.
const (
	KindCharge = "charge"
	KindRefund = "refund"
)

// ErrNotOpen is returned by a gateway used in a process that does not run
// the service it belongs to, or before the app started.
var ErrNotOpen = errors.New("gateway: not open here: it opens when the app starts, in the process that runs its service")

// Gateway is the simulated provider. Make one with [Declare].
type Gateway struct {
	h *store.Handle
}

// Movement is one charge or refund the gateway made.
type Movement struct {
	ID          string    `json:"id"`   // the provider's id: ch_… or re_…
	Kind        string    `json:"kind"` // KindCharge or KindRefund
	Key         string    `json:"idempotency_key"`
	OrderID     string    `json:"order_id"`
	Customer    string    `json:"customer"`
	AmountCents int64     `json:"amount_cents"`
	At          time.Time `json:"at"`
	// Repeats counts later requests with the same key, which moved nothing.
	Repeats int `json:"repeats"`
}

// Books is what the gateway did, summed up: the body of the apps' GET
// /ledger. Exactly-once money means both "twice" counts are 0.
type Books struct {
	Charges       int   `json:"charges"`
	ChargedCents  int64 `json:"charged_cents"`
	Refunds       int   `json:"refunds"`
	RefundedCents int64 `json:"refunded_cents"`
	// NetCents is what the customers paid in the end.
	NetCents int64 `json:"net_cents"`
	// OrdersChargedTwice and OrdersRefundedTwice count orders with more than
	// one charge (refund): money moved twice under different keys.
	OrdersChargedTwice  int `json:"orders_charged_twice"`
	OrdersRefundedTwice int `json:"orders_refunded_twice"`
	// RepeatedRequests counts requests whose key the gateway had seen: a
	// retry after a crash or a redelivery, answered without moving money.
	RepeatedRequests int `json:"repeated_requests"`
}

// Declare declares the gateway of service on app: it opens its database
// when the app starts, in the process that runs service (store.Declare,
// file "gateway"), and closes it when the app stops.
func Declare(app *troupe.App, d *store.DB, service string) *Gateway {
	return &Gateway{h: store.Declare(app, d, service, "gateway", schema...)}
}

// schema is the gateway's books. Movements looks an order up by its id,
// as a refund does: without the index each lookup reads every movement.
var schema = []string{`CREATE TABLE IF NOT EXISTS gateway_movements (
	id           TEXT PRIMARY KEY,
	kind         TEXT NOT NULL,
	idem_key     TEXT NOT NULL UNIQUE,
	order_id     TEXT NOT NULL,
	customer     TEXT NOT NULL,
	amount_cents BIGINT NOT NULL,
	at_us        BIGINT NOT NULL,
	repeats      INTEGER NOT NULL DEFAULT 0
)`,
	`CREATE INDEX IF NOT EXISTS gateway_movements_order ON gateway_movements (order_id, at_us)`,
}

// Charge takes amountCents from customer for orderID, once per key: a
// later call with the same key moves nothing and returns the first
// charge, with first false. It fails with the database's error (nothing
// moved) or [ErrNotOpen].
func (g *Gateway) Charge(ctx context.Context, key, orderID, customer string, amountCents int64) (m Movement, first bool, err error) {
	return g.move(ctx, KindCharge, key, orderID, customer, amountCents)
}

// Refund gives amountCents back to customer for orderID, once per key, as
// [Gateway.Charge] takes it.
func (g *Gateway) Refund(ctx context.Context, key, orderID, customer string, amountCents int64) (m Movement, first bool, err error) {
	return g.move(ctx, KindRefund, key, orderID, customer, amountCents)
}

func (g *Gateway) move(ctx context.Context, kind, key, orderID, customer string, cents int64) (Movement, bool, error) {
	if g.h.DB() == nil {
		return Movement{}, false, ErrNotOpen
	}
	prefix := "ch_"
	if kind == KindRefund {
		prefix = "re_"
	}
	m := Movement{ID: prefix + newID(), Kind: kind, Key: key, OrderID: orderID, Customer: customer, AmountCents: cents, At: time.Now().UTC()}
	res, err := g.h.DB().ExecContext(ctx, g.h.Q(`INSERT INTO gateway_movements (id, kind, idem_key, order_id, customer, amount_cents, at_us)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idem_key) DO UPDATE SET repeats = gateway_movements.repeats + 1`),
		m.ID, kind, key, orderID, customer, cents, m.At.UnixMicro())
	if err != nil {
		return Movement{}, false, fmt.Errorf("gateway: %s %s: %w", kind, orderID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Movement{}, false, fmt.Errorf("gateway: %w", err)
	} else if n != 1 {
		return Movement{}, false, fmt.Errorf("gateway: %s %s: %d rows changed", kind, orderID, n)
	}
	got, err := g.byKey(ctx, key)
	if err != nil {
		return Movement{}, false, err
	}
	return got, got.ID == m.ID, nil
}

func (g *Gateway) byKey(ctx context.Context, key string) (Movement, error) {
	var m Movement
	var at int64
	err := g.h.DB().QueryRowContext(ctx, g.h.Q(`SELECT id, kind, idem_key, order_id, customer, amount_cents, at_us, repeats
		FROM gateway_movements WHERE idem_key = ?`), key).
		Scan(&m.ID, &m.Kind, &m.Key, &m.OrderID, &m.Customer, &m.AmountCents, &at, &m.Repeats)
	if err != nil {
		return Movement{}, fmt.Errorf("gateway: read %s: %w", key, err)
	}
	m.At = time.UnixMicro(at).UTC()
	return m, nil
}

// Movements returns the charges and refunds of orderID, oldest first.
func (g *Gateway) Movements(ctx context.Context, orderID string) ([]Movement, error) {
	if g.h.DB() == nil {
		return nil, ErrNotOpen
	}
	rows, err := g.h.DB().QueryContext(ctx, g.h.Q(`SELECT id, kind, idem_key, order_id, customer, amount_cents, at_us, repeats
		FROM gateway_movements WHERE order_id = ? ORDER BY at_us, id`), orderID)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	defer rows.Close()
	out := []Movement{}
	for rows.Next() {
		var m Movement
		var at int64
		if err := rows.Scan(&m.ID, &m.Kind, &m.Key, &m.OrderID, &m.Customer, &m.AmountCents, &at, &m.Repeats); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		m.At = time.UnixMicro(at).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// Books sums up every movement.
func (g *Gateway) Books(ctx context.Context) (Books, error) {
	if g.h.DB() == nil {
		return Books{}, ErrNotOpen
	}
	var b Books
	err := g.h.DB().QueryRowContext(ctx, g.h.Q(`SELECT
			count(*) FILTER (WHERE kind = 'charge'),
			coalesce(sum(amount_cents) FILTER (WHERE kind = 'charge'), 0),
			count(*) FILTER (WHERE kind = 'refund'),
			coalesce(sum(amount_cents) FILTER (WHERE kind = 'refund'), 0),
			coalesce(sum(repeats), 0)
		FROM gateway_movements`)).Scan(&b.Charges, &b.ChargedCents, &b.Refunds, &b.RefundedCents, &b.RepeatedRequests)
	if err != nil {
		return Books{}, fmt.Errorf("gateway: books: %w", err)
	}
	err = g.h.DB().QueryRowContext(ctx, `SELECT
			count(*) FILTER (WHERE kind = 'charge' AND n > 1),
			count(*) FILTER (WHERE kind = 'refund' AND n > 1)
		FROM (SELECT kind, order_id, count(*) AS n FROM gateway_movements GROUP BY kind, order_id) per_order`).
		Scan(&b.OrdersChargedTwice, &b.OrdersRefundedTwice)
	if err != nil {
		return Books{}, fmt.Errorf("gateway: books: %w", err)
	}
	b.NetCents = b.ChargedCents - b.RefundedCents
	return b, nil
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
