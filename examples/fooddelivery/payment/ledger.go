package payment

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/troupe-go/troupe/examples/fooddelivery/internal/api"
	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/outbox"
)

// Entry is one order in the ledger: the body of GET /ledger?order=ID.
type Entry struct {
	OrderID     string `json:"order_id"`
	Customer    string `json:"customer"`
	AmountCents int64  `json:"amount_cents"`
	// ChargeID is the gateway's id of the charge.
	ChargeID string `json:"charge_id"`
	// ChargedBy is the id of the order_placed event that charged the order.
	ChargedBy string    `json:"charged_by"`
	ChargedAt time.Time `json:"charged_at"`
	RefundID  string    `json:"refund_id,omitempty"`
	// RefundedBy is the id of the event that asked for the refund.
	RefundedBy string    `json:"refunded_by,omitempty"`
	RefundedAt time.Time `json:"refunded_at,omitzero"`
	// Movements is what the gateway's own books say it did for the order:
	// one charge, and one refund if refunded, each with the repeated
	// requests it answered without moving money.
	Movements []gateway.Movement `json:"gateway_movements"`
}

// Books is the body of GET /ledger: the payment gateway's books (what it
// moved, as a provider would bill it) and what the ledger did with the
// events that asked it to move money.
type Books struct {
	// The gateway's books: charges, charged_cents, refunds,
	// refunded_cents, net_cents, orders_charged_twice (and refunded twice:
	// exactly-once money means both are 0) and repeated_requests (requests
	// with a key the gateway had seen, which moved nothing).
	gateway.Books
	// Redeliveries counts charges and refunds the ledger recorded after
	// the gateway said an earlier attempt had moved the money already: an
	// attempt that died (or crashed on purpose) before its transaction
	// committed. The money moved once.
	Redeliveries int `json:"redeliveries"`
	// OtherEvents counts events for an order whose money another event had
	// moved: ignored.
	OtherEvents int `json:"other_events_ignored"`
	// RefundsRefused counts refunds that wait in the dead letters of
	// payment.reverse: asked for orders this ledger never charged (or that
	// failed on every attempt). Replay them once the ledger can take them.
	RefundsRefused int `json:"refunds_refused"`
	// SimulatedCrashes counts the Redeliveries whose first attempt failed
	// on purpose after moving the money (Options.CrashRate).
	SimulatedCrashes int `json:"simulated_crashes"`
}

// schema is the payment service's tables, beside its outbox's. The
// gateway keeps its own books elsewhere (examples/internal/gateway).
var schema = []string{
	`CREATE TABLE IF NOT EXISTS payment_ledger (
	order_id       TEXT PRIMARY KEY,
	customer       TEXT NOT NULL,
	amount_cents   BIGINT NOT NULL,
	charge_id      TEXT NOT NULL,
	charged_by     TEXT NOT NULL,
	charged_ns     BIGINT NOT NULL,
	charge_retried INTEGER NOT NULL DEFAULT 0,
	charge_crashed INTEGER NOT NULL DEFAULT 0,
	refund_id      TEXT NOT NULL DEFAULT '',
	refunded_by    TEXT NOT NULL DEFAULT '',
	refunded_ns    BIGINT NOT NULL DEFAULT 0,
	refund_retried INTEGER NOT NULL DEFAULT 0,
	refund_crashed INTEGER NOT NULL DEFAULT 0
)`,
	// Events that asked to move money another event had moved.
	`CREATE TABLE IF NOT EXISTS payment_ignored (
	event_id TEXT PRIMARY KEY,
	order_id TEXT NOT NULL,
	kind     TEXT NOT NULL
)`,
}

// ledger is the payment service's books, keyed by order id, in the
// service's database; its writes run in the inbox transaction of the
// event that asked for them.
type ledger struct {
	ob *outbox.Outbox
}

func (l *ledger) q(query string) string { return store.Q(l.ob, query) }

// queryer is a transaction or the database.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// entry returns order id's entry, and false when the ledger has none.
func (l *ledger) entry(ctx context.Context, q queryer, id string) (Entry, bool, error) {
	var e Entry
	var charged, refunded int64
	err := q.QueryRowContext(ctx, l.q(`SELECT order_id, customer, amount_cents, charge_id, charged_by, charged_ns, refund_id, refunded_by, refunded_ns
		FROM payment_ledger WHERE order_id = ?`), id).
		Scan(&e.OrderID, &e.Customer, &e.AmountCents, &e.ChargeID, &e.ChargedBy, &charged, &e.RefundID, &e.RefundedBy, &refunded)
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("ledger: %w", err)
	}
	e.ChargedAt = time.Unix(0, charged).UTC()
	if refunded != 0 {
		e.RefundedAt = time.Unix(0, refunded).UTC()
	}
	return e, true, nil
}

// charged records the charge m of an order, made for event evID. retried
// says the gateway had made it for an earlier attempt; crashed, that the
// attempt crashed on purpose.
func (l *ledger) charged(ctx context.Context, tx *sql.Tx, m gateway.Movement, evID string, retried, crashed bool) error {
	_, err := tx.ExecContext(ctx, l.q(`INSERT INTO payment_ledger
		(order_id, customer, amount_cents, charge_id, charged_by, charged_ns, charge_retried, charge_crashed)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), m.OrderID, m.Customer, m.AmountCents, m.ID, evID, m.At.UnixNano(), flag(retried), flag(crashed))
	return err
}

// refunded records the refund m of an order, made for event evID. It
// fails when another refund was recorded since the entry was read.
func (l *ledger) refunded(ctx context.Context, tx *sql.Tx, m gateway.Movement, evID string, retried, crashed bool) error {
	res, err := tx.ExecContext(ctx, l.q(`UPDATE payment_ledger SET refund_id = ?, refunded_by = ?, refunded_ns = ?, refund_retried = ?, refund_crashed = ?
		WHERE order_id = ? AND refunded_by = ''`), m.ID, evID, m.At.UnixNano(), flag(retried), flag(crashed), m.OrderID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("ledger: refund of order %s: recorded by another event meanwhile (%d rows, %v); retry", m.OrderID, n, err)
	}
	return nil
}

// ignore records that event evID asked to move money another event had
// moved.
func (l *ledger) ignore(ctx context.Context, tx *sql.Tx, evID, orderID, kind string) error {
	_, err := tx.ExecContext(ctx, l.q(`INSERT INTO payment_ignored (event_id, order_id, kind) VALUES (?, ?, ?)
		ON CONFLICT (event_id) DO NOTHING`), evID, orderID, kind)
	return err
}

// counts returns the ledger's part of [Books].
func (l *ledger) counts(ctx context.Context, db *sql.DB) (redeliveries, crashes, others int, err error) {
	err = db.QueryRowContext(ctx, `SELECT coalesce(sum(charge_retried + refund_retried), 0), coalesce(sum(charge_crashed + refund_crashed), 0)
		FROM payment_ledger`).Scan(&redeliveries, &crashes)
	if err == nil {
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM payment_ignored`).Scan(&others)
	}
	return redeliveries, crashes, others, err
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// serveLedger serves GET /ledger and GET /ledger?order=ID.
func (p *processor) serveLedger(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := httpjson.CheckQuery(q, "order"); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	ctx := r.Context()
	db := p.ledger.ob.DB()
	if db == nil {
		p.unavailable(w, outbox.ErrNotOpen)
		return
	}
	if !q.Has("order") {
		b, err := p.books(ctx, db)
		if err != nil {
			p.unavailable(w, err)
			return
		}
		httpjson.WriteJSON(w, http.StatusOK, b)
		return
	}
	id := q.Get("order")
	if !api.ValidRef(id) {
		httpjson.WriteError(w, http.StatusBadRequest, "order must be an order id: 1 to 100 printable characters")
		return
	}
	e, ok, err := p.ledger.entry(ctx, db, id)
	if err == nil && ok {
		e.Movements, err = p.gateway.Movements(ctx, id)
	}
	switch {
	case err != nil:
		p.unavailable(w, err)
	case !ok:
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("the ledger has no charge for order %q", id))
	default:
		httpjson.WriteJSON(w, http.StatusOK, e)
	}
}

// books reads the gateway's books and the ledger's counts.
func (p *processor) books(ctx context.Context, db *sql.DB) (Books, error) {
	gb, err := p.gateway.Books(ctx)
	if err != nil {
		return Books{}, err
	}
	b := Books{Books: gb}
	if b.Redeliveries, b.SimulatedCrashes, b.OtherEvents, err = p.ledger.counts(ctx, db); err != nil {
		return Books{}, err
	}
	if p.reverses {
		dead, err := p.app.DeadLetters(ctx, ServiceName+".reverse", 0)
		if err != nil {
			return Books{}, err
		}
		b.RefundsRefused = len(dead)
	}
	return b, nil
}

// unavailable answers 503 for a read that failed, and logs why.
func (p *processor) unavailable(w http.ResponseWriter, err error) {
	p.log.Error("payment: could not read the books", "err", err)
	httpjson.WriteError(w, http.StatusServiceUnavailable, "the payment service cannot read its books right now; try again")
}
