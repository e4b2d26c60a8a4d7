// Package payment is the payment service of the food-delivery example. It
// charges the customer for every order placed and publishes [Success]; when
// the restaurant cannot take a paid order it refunds the charge and
// publishes [Reversed].
//
// Money moves exactly once per order although events arrive at least once:
// the service keeps a ledger keyed by order id that remembers which event
// charged (and which refunded) each order. A redelivery of that event does
// not touch the gateway again but publishes its outcome again, with the
// same event id, in case the first attempt failed before publishing; an
// event for an order already charged by another event is ignored.
//
// Route:
//
//	GET /ledger            the books: charges, refunds, what was ignored
//	GET /ledger?order=ID   one order's entry
package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/chance"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
)

// ServiceName is the payment service's name in the app and on --services.
const ServiceName = "payment"

// Options tunes the payment service. The zero value is the normal service.
type Options struct {
	// CrashRate is the share (0 to 1) of first attempts at a charge or a
	// refund that fail right after the gateway moved the money, as if the
	// process died before publishing the outcome. The broker redelivers
	// them, and the ledger must not move the money again. Default 0: for
	// chaos runs only.
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
		troupe.Subscribe(svc, t, "reverse", func(ctx context.Context, ev troupe.Event[T]) error {
			return p.reverse(ctx, ev.Envelope, ev.Data.OrderRef(), ev.Data.RefundReason())
		}, troupe.Emits(Reversed))
	}}
}

// Register declares the payment service on app. log gets one line per
// charge and refund; nil means slog.Default().
func Register(app *troupe.App, log *slog.Logger, opts Options, reversals ...Reversal) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	p := &processor{log: log, opts: opts, ledger: newLedger()}
	svc := app.Service(ServiceName).Publishes(Success, Reversed)
	troupe.Subscribe(svc, order.Placed, "charge", p.charge, troupe.Emits(Success))
	for _, r := range reversals {
		r.subscribe(svc, p)
	}
	svc.HandleFunc("GET /ledger", p.serveLedger)
	svc.HandleFunc("/ledger", httpjson.Fallback("/ledger", "GET"))
	return svc
}

// processor is the payment service's state: its ledger and the fake
// gateway behind it.
type processor struct {
	log    *slog.Logger
	opts   Options
	ledger *ledger
}

// errCrash is the error of a simulated crash; see Options.CrashRate.
var errCrash = errors.New("simulated crash after the gateway moved the money, before publishing")

// crash reports whether the simulated crash hits this attempt.
func (p *processor) crash(env troupe.Envelope, what string) bool {
	return p.opts.CrashRate > 0 && env.Attempt == 1 && chance.Unit("crash", what, env.ID) < p.opts.CrashRate
}

// charge is the handler of order.Placed.
func (p *processor) charge(ctx context.Context, ev troupe.Event[order.PlacedV1]) error {
	o := ev.Data
	e, outcome := p.ledger.charge(o.OrderID, o.Customer, o.TotalCents, ev.ID)
	switch outcome {
	case moved:
		p.log.Info(fmt.Sprintf("payment: charged order %s %s to %s", o.OrderID, order.FormatCents(o.TotalCents), o.Customer))
		if p.crash(ev.Envelope, "charge") {
			p.ledger.crashed()
			return errCrash
		}
	case otherEvent:
		p.log.Warn(fmt.Sprintf("payment: order %s was already charged by event %s; ignoring event %s", o.OrderID, e.ChargedBy, ev.ID))
		return nil
	}
	// First delivery or a redelivery: publish the outcome. On a redelivery
	// the event id is the same as the first attempt's, so consumers (and
	// NATS within its dedup window) see one event.
	return troupe.Publish(ctx, Success, SuccessV1{
		OrderID: o.OrderID, Customer: o.Customer, Restaurant: o.Restaurant, Items: o.Items,
		AmountCents: e.AmountCents, ChargeID: e.ChargeID, Attempt: ev.Attempt,
	})
}

// reverse refunds the charge of order id, asked by the event env.
func (p *processor) reverse(ctx context.Context, env troupe.Envelope, id, reason string) error {
	e, outcome := p.ledger.refund(id, env.ID)
	switch outcome {
	case missing:
		// Nothing to refund here: the charge is in another process's
		// ledger, or this process restarted and forgot it. Dead-lettered
		// for a person to look at; replay it where the ledger has it.
		return troupe.Permanent(fmt.Errorf("order %s has no charge in this ledger; nothing to refund", id))
	case moved:
		p.log.Info(fmt.Sprintf("payment: refunded order %s %s to %s (%s)", id, order.FormatCents(e.AmountCents), e.Customer, reason))
		if p.crash(env, "refund") {
			p.ledger.crashed()
			return errCrash
		}
	case otherEvent:
		p.log.Warn(fmt.Sprintf("payment: order %s was already refunded for event %s; ignoring event %s", id, e.RefundedBy, env.ID))
		return nil
	}
	return troupe.Publish(ctx, Reversed, ReversedV1{
		OrderID: id, Customer: e.Customer, AmountCents: e.AmountCents, ChargeID: e.ChargeID,
		RefundID: e.RefundID, Reason: reason, Attempt: env.Attempt,
	})
}
