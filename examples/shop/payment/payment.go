// Package payment is the payment service of the shop: it charges the
// customer for every order placed and publishes [Succeeded], or [Declined]
// when the provider declines the card; and it refunds an order that cannot
// go on after it was charged, publishing [Refunded].
//
// The provider is the gateway package's simulated payment gateway, an
// outside system with books of its own. The service sends it one
// idempotency key per order and operation ("<order>/charge",
// "<order>/refund"), so no retry, redelivery or crash can charge or refund
// an order twice; GET /ledger shows the gateway's books.
//
// Two failure paths end here. When charging fails for good (every attempt,
// or the last one died with its process), troupe publishes [Failed], the
// subscription's declared compensation (troupe.OnFailure), and this service
// refunds whatever the provider took before it failed to answer. When a
// later step cannot go on (inventory out of stock), its failure event asks
// for a refund too: see [RefundOn].
//
// Routes:
//
//	GET /ledger            the gateway's books: charges, refunds, orders charged or refunded twice
//	GET /ledger?order=ID   the charges and refunds of one order
package payment

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the payment service's name in the app and on --services.
const ServiceName = "payment"

// Options tunes the payment service. The service reads FailRate and
// DeclineRate when it handles an event, so flags parsed after Register
// take effect; the other fields shape the subscription and are read by
// Register.
type Options struct {
	// FailRate is the share (0 to 1) of charge attempts whose answer the
	// provider loses: it takes the money, then times out. troupe retries
	// the attempt with backoff, and the retry, sent with the same
	// idempotency key, gets the first charge back instead of a second one.
	// Each attempt of each order fails or not by a hash of the order id and
	// the attempt ([InjectedFailure]). Default 0.
	FailRate float64
	// DeclineRate is the share (0 to 1) of orders whose card the provider
	// declines: nothing is charged and the order is cancelled. Decided by
	// a hash of the order id ([Declines]). Default 0.
	DeclineRate float64
	// ChargeAttempts is how often an order is offered to the provider
	// before the payment is given up ([Failed]). Default 8.
	ChargeAttempts int
	// MinBackoff and MaxBackoff bound the delay between charge attempts.
	// Default 500ms and 1m.
	MinBackoff, MaxBackoff time.Duration
}

func (o *Options) subscribeOptions() []troupe.SubscribeOption {
	var opts []troupe.SubscribeOption
	if o.ChargeAttempts > 0 {
		opts = append(opts, troupe.MaxAttempts(o.ChargeAttempts))
	}
	if o.MinBackoff > 0 || o.MaxBackoff > 0 {
		lo, hi := o.MinBackoff, o.MaxBackoff
		if lo <= 0 {
			lo = 500 * time.Millisecond
		}
		if hi < lo {
			hi = max(time.Minute, lo)
		}
		opts = append(opts, troupe.Backoff(lo, hi))
	}
	return opts
}

// schema is the payment service's own record: the charges that went
// through, and the refunds it made. The money itself is the gateway's.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS payment_charges (
	order_id     TEXT PRIMARY KEY,
	charge_id    TEXT NOT NULL,
	customer     TEXT NOT NULL,
	amount_cents BIGINT NOT NULL,
	charged_us   BIGINT NOT NULL
)`,
	`CREATE TABLE IF NOT EXISTS payment_refunds (
	order_id     TEXT PRIMARY KEY,
	refund_id    TEXT NOT NULL,
	amount_cents BIGINT NOT NULL,
	reason       TEXT NOT NULL,
	refunded_us  BIGINT NOT NULL
)`,
}

// Register declares the payment service on app, with its database (from
// db) and the gateway's, both opened when the app starts in the process
// that runs the service. It charges for every order placed, refunds the
// orders of its own [Failed] events and of every topic in refunds, and
// serves GET /ledger. log receives one line per charge and refund; nil
// means the app's logger. opts must not be nil.
func Register(app *troupe.App, log *slog.Logger, db *store.DB, opts *Options, refunds ...Refund) *troupe.Service {
	if log == nil {
		log = app.Logger()
	}
	p := &processor{
		log:  log,
		opts: opts,
		ob:   store.Outbox(app, db, ServiceName, schema...),
		gw:   gateway.Declare(app, db, ServiceName),
	}
	svc := app.Service(ServiceName).Publishes(Succeeded, Declined, Failed, Refunded)
	outbox.Subscribe(svc, orders.Placed, "charge", p.ob, p.charge, append(opts.subscribeOptions(),
		troupe.Emits(Succeeded, Declined),
		troupe.OnFailure(Failed, p.failed),
	)...)
	RefundOn(Failed).subscribe(svc, p)
	for _, r := range refunds {
		r.subscribe(svc, p)
	}
	svc.HandleFunc("GET /ledger", p.serveLedger)
	svc.HandleFunc("/ledger", httpjson.Fallback("/ledger", "GET"))
	return svc
}

// processor is the payment service: its own records in ob's database, and
// the provider.
type processor struct {
	log  *slog.Logger
	opts *Options
	ob   *outbox.Outbox
	gw   *gateway.Gateway
}

// charge is the handler of orders.Placed. It runs in a transaction of the
// service's database that also records the event as handled (the inbox):
// the charge's record and the event it publishes commit together. The
// gateway's books are outside that transaction, as a real provider's are;
// the idempotency key makes a second call after a crash harmless.
func (p *processor) charge(ctx context.Context, tx *sql.Tx, ev troupe.Event[orders.PlacedV1]) error {
	o := ev.Data
	var refunded int
	if err := tx.QueryRowContext(ctx, store.Q(p.ob, `SELECT count(*) FROM payment_refunds WHERE order_id = ?`), o.OrderID).Scan(&refunded); err != nil {
		return err
	}
	if refunded > 0 {
		// A second copy of an order_placed whose charge was given up
		// (Failed) and refunded: the order is cancelled, charge nothing.
		p.log.Warn(fmt.Sprintf("payment: order %s was refunded already; not charging it again", o.OrderID))
		return nil
	}
	if Declines(o.OrderID, p.opts.DeclineRate) {
		p.log.Info(fmt.Sprintf("payment: the card of %s was declined for order %s (%s)", o.Customer, o.OrderID, o.Total))
		return outbox.PublishTx(ctx, tx, Declined, DeclinedV1{
			OrderID: o.OrderID, Customer: o.Customer, Amount: o.Total, Reason: "the card was declined",
		})
	}
	m, first, err := p.gw.Charge(ctx, o.OrderID+"/charge", o.OrderID, o.Customer, o.Total.Cents)
	if err != nil {
		return fmt.Errorf("charge order %s: %w", o.OrderID, err)
	}
	if first {
		p.log.Info(fmt.Sprintf("payment: charged order %s %s to %s", o.OrderID, o.Total, o.Customer))
	}
	if InjectedFailure(o.OrderID, ev.Attempt, p.opts.FailRate) {
		p.log.Warn(fmt.Sprintf("payment: the provider took %s for order %s but its answer timed out (attempt %d); troupe retries, and the retry finds the charge by its idempotency key",
			o.Total, o.OrderID, ev.Attempt))
		return errProviderTimeout
	}
	_, err = tx.ExecContext(ctx, store.Q(p.ob, `INSERT INTO payment_charges (order_id, charge_id, customer, amount_cents, charged_us)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), o.OrderID, m.ID, o.Customer, m.AmountCents, m.At.UnixMicro())
	if err != nil {
		return err
	}
	return outbox.PublishTx(ctx, tx, Succeeded, SucceededV1{
		OrderID: o.OrderID, Customer: o.Customer, Lines: o.Lines, Amount: o.Total, ChargeID: m.ID,
	})
}

// failed builds the compensation of an order_placed event that could not
// be charged; troupe publishes it in the order's business transaction.
func (p *processor) failed(ev troupe.Event[orders.PlacedV1], cause error) FailedV1 {
	o := ev.Data
	p.log.Warn(fmt.Sprintf("payment: giving up charging order %s after %d attempt(s): %v", o.OrderID, ev.Attempt, cause))
	return FailedV1{OrderID: o.OrderID, Customer: o.Customer, Amount: o.Total, Reason: cause.Error(), Attempts: ev.Attempt}
}

// errProviderTimeout is the injected failure of FailRate.
var errProviderTimeout = errors.New("payment provider timed out (injected by --fail-rate)")

// InjectedFailure reports whether a provider that fails rate of its
// attempts fails the given attempt to charge an order. The decision is a
// hash of the order id and the attempt, so it is the same on every run and
// in every process, and a test can tell which orders need many attempts.
func InjectedFailure(orderID string, attempt int, rate float64) bool {
	return rate > 0 && unit(fmt.Sprintf("%s/%d", orderID, attempt)) < rate
}

// Declines reports whether a provider that declines rate of the orders
// declines this one, by a hash of its id.
func Declines(orderID string, rate float64) bool {
	return rate > 0 && unit("decline/"+orderID) < rate
}

// unit maps s to [0, 1) by a hash.
func unit(s string) float64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return float64(h.Sum64()%10000) / 10000
}
