// Package payment is the payment service of the food-delivery example. It
// charges the customer for every order placed and publishes [Success]; when
// the restaurant cannot take a paid order it refunds the charge and
// publishes [Reversed].
//
// The money moves through the payment gateway (examples/internal/gateway),
// an outside system with books of its own, and exactly once per order
// although events arrive at least once and the process may die at any
// moment:
//
//   - the service's ledger (its database: payment.db in the data
//     directory, or the payment_ tables of --db's PostgreSQL) records each
//     charge and refund in the inbox transaction of the event that asked
//     for it, together with the event it publishes (outbox): a redelivery
//     of an event whose transaction committed is acknowledged unread;
//   - every request to the gateway carries the idempotency key
//     "<order id>/charge" or "<order id>/refund": an attempt that died
//     after the gateway moved the money and before its transaction
//     committed is redelivered, asks again with the same key, and moves
//     nothing;
//   - an event for an order whose money another event moved (an order
//     published twice) is ignored.
//
// The gateway's books are apart from the ledger, so a flaw in those rules
// would show in GET /ledger as orders_charged_twice, not hide.
//
// Route:
//
//	GET /ledger            the books: the gateway's, and what the ledger did with the events
//	GET /ledger?order=ID   one order's entry, with the gateway's movements
package payment

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/chance"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the payment service's name in the app and on --services.
const ServiceName = "payment"

// Options tunes the payment service. The zero value is the normal service.
// The service reads them when it handles an event, so a flag may set them
// after Register.
type Options struct {
	// CrashRate is the share (0 to 1) of first attempts at a charge or a
	// refund that fail right after the gateway moved the money, as if the
	// process died before its transaction committed: the ledger entry and
	// the outcome event roll back, the broker redelivers, and the retry
	// must not move the money again. Default 0: for chaos runs only.
	CrashRate float64
}

// RefundCause is implemented by the data of an event that asks for an
// order's charge to be reversed.
type RefundCause interface {
	// OrderRef returns the id of the order to refund.
	OrderRef() string
	// RefundReason says why, for the customer and the ledger.
	RefundReason() string
}

// Reversal subscribes the payment service to a topic whose events ask for
// a refund. Make one with [ReverseOn] and pass it to [Register].
type Reversal struct {
	subscribe func(svc *troupe.Service, p *processor)
}

// ReverseOn returns the [Reversal] that refunds an order's charge for each
// event of t, and publishes [Reversed].
//
// It is passed in rather than imported because the restaurant service,
// whose failure event asks for refunds, imports this package for [Success].
func ReverseOn[T RefundCause](t *troupe.Topic[T]) Reversal {
	return Reversal{subscribe: func(svc *troupe.Service, p *processor) {
		p.reverses = true
		outbox.Subscribe(svc, t, "reverse", p.ledger.ob, func(ctx context.Context, tx *sql.Tx, ev troupe.Event[T]) error {
			return p.reverse(ctx, tx, ev.Envelope, ev.Data.OrderRef(), ev.Data.RefundReason())
		}, troupe.Emits(Reversed))
	}}
}

// Register declares the payment service on app, with its ledger and the
// gateway in db (opened when the app starts, where the service runs). opts
// is read when events are handled; nil means the zero Options. log gets
// one line per charge and refund; nil means slog.Default().
func Register(app *troupe.App, log *slog.Logger, db *store.DB, opts *Options, reversals ...Reversal) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	if opts == nil {
		opts = &Options{}
	}
	p := &processor{
		app: app, log: log, opts: opts,
		ledger:  &ledger{ob: store.Outbox(app, db, ServiceName, schema...)},
		gateway: gateway.Declare(app, db, ServiceName),
	}
	svc := app.Service(ServiceName).Publishes(Success, Reversed)
	outbox.Subscribe(svc, order.Placed, "charge", p.ledger.ob, p.charge, troupe.Emits(Success))
	for _, r := range reversals {
		r.subscribe(svc, p)
	}
	svc.HandleFunc("GET /ledger", p.serveLedger)
	svc.HandleFunc("/ledger", httpjson.Fallback("/ledger", "GET"))
	return svc
}

// processor is the payment service: its ledger and the gateway it asks to
// move the money.
type processor struct {
	app     *troupe.App
	log     *slog.Logger
	opts    *Options
	ledger  *ledger
	gateway *gateway.Gateway
	// reverses is set when the service refunds (a Reversal was given):
	// its dead letters count in Books.RefundsRefused.
	reverses bool
}

// errCrash is the error of a simulated crash; see Options.CrashRate.
var errCrash = errors.New("simulated crash after the gateway moved the money, before the ledger committed")

// crash reports whether the simulated crash hits this attempt.
func (p *processor) crash(env troupe.Envelope, what string) bool {
	return env.Attempt == 1 && p.crashes(env.ID, what)
}

// crashes reports whether the first attempt of event id at what (charge or
// refund) crashes on purpose: a function of the event, so a retry knows.
func (p *processor) crashes(id, what string) bool {
	return p.opts.CrashRate > 0 && chance.Unit("crash", what, id) < p.opts.CrashRate
}

// charge is the handler of order.Placed, in the event's inbox transaction.
func (p *processor) charge(ctx context.Context, tx *sql.Tx, ev troupe.Event[order.PlacedV1]) error {
	o := ev.Data
	e, found, err := p.ledger.entry(ctx, tx, o.OrderID)
	if err != nil {
		return err
	}
	if found {
		// The inbox passed this event, so another one charged the order.
		p.log.Warn(fmt.Sprintf("payment: order %s was already charged by event %s; ignoring event %s", o.OrderID, e.ChargedBy, ev.ID))
		return p.ledger.ignore(ctx, tx, ev.ID, o.OrderID, gateway.KindCharge)
	}
	m, first, err := p.gateway.Charge(ctx, o.OrderID+"/charge", o.OrderID, o.Customer, o.TotalCents)
	if err != nil {
		return err
	}
	if first {
		p.log.Info(fmt.Sprintf("payment: charged order %s %s to %s", o.OrderID, order.FormatCents(m.AmountCents), o.Customer))
		if p.crash(ev.Envelope, gateway.KindCharge) {
			return errCrash
		}
	}
	if err := p.ledger.charged(ctx, tx, m, ev.ID, !first, !first && p.crashes(ev.ID, gateway.KindCharge)); err != nil {
		return err
	}
	return outbox.PublishTx(ctx, tx, Success, SuccessV1{
		OrderID: o.OrderID, Customer: o.Customer, Restaurant: o.Restaurant, Items: o.Items,
		AmountCents: m.AmountCents, ChargeID: m.ID, Attempt: ev.Attempt,
	})
}

// reverse refunds the charge of order id, asked by the event env, in its
// inbox transaction.
func (p *processor) reverse(ctx context.Context, tx *sql.Tx, env troupe.Envelope, id, reason string) error {
	e, found, err := p.ledger.entry(ctx, tx, id)
	switch {
	case err != nil:
		return err
	case !found:
		// Nothing to refund here: the charge is in another ledger (a
		// payment process with a database of its own), or it was lost.
		// Dead-lettered for a person to look at; replay it where the
		// ledger has it.
		return troupe.Permanent(fmt.Errorf("order %s has no charge in this ledger; nothing to refund", id))
	case e.RefundedBy != "":
		p.log.Warn(fmt.Sprintf("payment: order %s was already refunded for event %s; ignoring event %s", id, e.RefundedBy, env.ID))
		return p.ledger.ignore(ctx, tx, env.ID, id, gateway.KindRefund)
	}
	m, first, err := p.gateway.Refund(ctx, id+"/refund", id, e.Customer, e.AmountCents)
	if err != nil {
		return err
	}
	if first {
		p.log.Info(fmt.Sprintf("payment: refunded order %s %s to %s (%s)", id, order.FormatCents(m.AmountCents), e.Customer, reason))
		if p.crash(env, gateway.KindRefund) {
			return errCrash
		}
	}
	if err := p.ledger.refunded(ctx, tx, m, env.ID, !first, !first && p.crashes(env.ID, gateway.KindRefund)); err != nil {
		return err
	}
	return outbox.PublishTx(ctx, tx, Reversed, ReversedV1{
		OrderID: id, Customer: e.Customer, AmountCents: m.AmountCents, ChargeID: e.ChargeID,
		RefundID: m.ID, Reason: reason, Attempt: env.Attempt,
	})
}
