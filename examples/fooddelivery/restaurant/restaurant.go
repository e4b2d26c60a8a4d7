// Package restaurant is the restaurant service of the food-delivery
// example: for every paid order it asks the restaurant to confirm and
// publishes [ConfirmedOrder], or, when the restaurant cannot take the
// order, [ConfirmationFailed], which makes the payment service refund the
// customer.
//
// The failure path is declared, not hand-written: the subscription says
// troupe.OnFailure(ConfirmationFailed, ...), and its handler only says how
// it failed. A rejection (sold out, closed) is troupe.Permanent and is
// compensated at once; a transient failure (the restaurant's tablet does
// not answer) is a plain error, retried with backoff, and compensated only
// if the last attempt fails too.
//
// The restaurants are simulated: [Decide] picks each order's fate from its
// id, so it is the same in every process and on every redelivery.
package restaurant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/chance"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
)

// ServiceName is the restaurant service's name in the app and on --services.
const ServiceName = "restaurant"

// Options tunes the restaurant service. Each field documents its default.
// FailureRate is read when an order is handled, so a flag may set it after
// Register; the others are read by Register.
type Options struct {
	// FailureRate is the share (0 to 1) of orders that meet a failure at
	// the restaurant; see [Decide] for how they fail. Default 0.
	FailureRate float64
	// MaxAttempts is how often a paid order is offered to the restaurant
	// before it is given up and refunded. Default 4.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the delay between attempts. Default
	// 200ms and 2s.
	MinBackoff, MaxBackoff time.Duration
	// BreakerFailures consecutive transient failures open a circuit
	// breaker on the subscription for BreakerCooldown (see
	// troupe.CircuitBreaker). Default 0: no breaker. The simulated
	// failures belong to single orders, not to a dependency every order
	// needs, and the breaker is one per subscription, not per restaurant:
	// a run of failed orders would pause every restaurant's orders. Turn
	// it on when the failures come from one shared dependency (the
	// restaurants' common gateway, say).
	BreakerFailures int
	BreakerCooldown time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxAttempts < 1 {
		o.MaxAttempts = 4
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(2*time.Second, o.MinBackoff)
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = time.Second
	}
	return o
}

// ErrRejected marks a restaurant's refusal of an order: another attempt
// cannot change it.
var ErrRejected = errors.New("the restaurant rejected the order")

// Register declares the restaurant service on app. It keeps no state: an
// order's fate is a function of its id. log gets one line per
// confirmation or failure; nil means slog.Default(). nil opts means the
// zero Options.
func Register(app *troupe.App, log *slog.Logger, opts *Options) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	if opts == nil {
		opts = &Options{}
	}
	k := &kitchen{log: log, rate: &opts.FailureRate, opts: opts.withDefaults()}
	svc := app.Service(ServiceName).Publishes(ConfirmedOrder, ConfirmationFailed)
	troupe.Subscribe(svc, payment.Success, "confirm", k.confirm,
		troupe.Emits(ConfirmedOrder),
		troupe.OnFailure(ConfirmationFailed, k.failed),
		troupe.MaxAttempts(k.opts.MaxAttempts),
		troupe.Backoff(k.opts.MinBackoff, k.opts.MaxBackoff),
		troupe.CircuitBreaker(k.opts.BreakerFailures, k.opts.BreakerCooldown),
	)
	return svc
}

type kitchen struct {
	log  *slog.Logger
	rate *float64 // Options.FailureRate, read per order
	opts Options  // with defaults, as declared
}

// confirm is the handler of payment.Success.
func (k *kitchen) confirm(ctx context.Context, ev troupe.Event[payment.SuccessV1]) error {
	o := ev.Data
	fate := Decide(o.OrderID, *k.rate, k.opts.MaxAttempts)
	switch {
	case fate.Kind == Reject:
		return troupe.Permanent(fmt.Errorf("%w: %s", ErrRejected, fate.Reason))
	case fate.Kind == Down || (fate.Kind == Flaky && ev.Attempt <= fate.Failures):
		return fmt.Errorf("restaurant %s did not answer (attempt %d of %d): %s", o.Restaurant, ev.Attempt, k.opts.MaxAttempts, fate.Reason)
	}
	ready := 10 + int(chance.Unit("ready", o.OrderID)*30)
	k.log.Info(fmt.Sprintf("restaurant: %s confirmed order %s, ready in %d min (attempt %d)", o.Restaurant, o.OrderID, ready, ev.Attempt))
	return troupe.Publish(ctx, ConfirmedOrder, ConfirmedOrderV1{
		OrderID: o.OrderID, Customer: o.Customer, Restaurant: o.Restaurant, Items: o.Items,
		AmountCents: o.AmountCents, ReadyInMinutes: ready, Attempt: ev.Attempt,
	})
}

// failed builds the compensation event of an order the restaurant did not
// take; troupe publishes it in the order's business transaction.
func (k *kitchen) failed(ev troupe.Event[payment.SuccessV1], cause error) ConfirmationFailedV1 {
	o := ev.Data
	k.log.Info(fmt.Sprintf("restaurant: %s could not take order %s after %d attempt(s): %v", o.Restaurant, o.OrderID, ev.Attempt, cause))
	return ConfirmationFailedV1{
		OrderID: o.OrderID, Customer: o.Customer, Restaurant: o.Restaurant, AmountCents: o.AmountCents,
		ChargeID: o.ChargeID, Reason: cause.Error(), Rejected: errors.Is(cause, ErrRejected), Attempt: ev.Attempt,
	}
}

// FateKind is how a simulated restaurant answers an order.
type FateKind string

// The fates of an order at the restaurant.
const (
	Confirm FateKind = "confirm" // confirmed on the first attempt
	Reject  FateKind = "reject"  // refused: permanent, compensated at once
	Flaky   FateKind = "flaky"   // no answer for Failures attempts, then confirmed
	Down    FateKind = "down"    // no answer on any attempt: compensated after the last
)

// Fate is what the simulated restaurant does with one order.
type Fate struct {
	Kind FateKind
	// Failures is how many attempts fail before a Flaky order is confirmed.
	Failures int
	// Reason is what the restaurant says when it fails.
	Reason string
}

// Decide returns the fate of order id at a restaurant that fails rate of
// its orders and is offered each order maxAttempts times. Of the orders
// that fail, half are rejected, a quarter are flaky (confirmed after 1 to
// maxAttempts-2 failed attempts) and a quarter meet a restaurant that is
// down for every attempt. The fate depends only on its arguments.
//
// A flaky restaurant answers by the last attempt but one, so that an
// attempt that dies with its process after the restaurant confirmed still
// has a retry to confirm again: troupe settles an event whose last attempt
// died with a declared compensation, without knowing what that attempt
// did, and a confirmation on the last attempt would then be followed by a
// refund of the same order.
func Decide(id string, rate float64, maxAttempts int) Fate {
	if chance.Unit("restaurant", id) >= rate {
		return Fate{Kind: Confirm}
	}
	kind := chance.Unit("restaurant-kind", id)
	switch {
	case kind < 0.5:
		reasons := []string{"sold out of an ordered dish", "the kitchen is closing", "too many orders right now"}
		return Fate{Kind: Reject, Reason: reasons[int(chance.Unit("reason", id)*float64(len(reasons)))]}
	case kind < 0.75 && maxAttempts > 2:
		n := 1 + int(chance.Unit("flaky", id)*float64(maxAttempts-2))
		return Fate{Kind: Flaky, Failures: n, Reason: "its tablet is offline"}
	}
	return Fate{Kind: Down, Failures: maxAttempts, Reason: "its tablet is offline"}
}
