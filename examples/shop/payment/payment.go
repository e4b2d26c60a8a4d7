// Package payment is the payment service of the shop: it charges the
// customer for every order placed and publishes [Succeeded].
package payment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/orders"
)

// Succeeded is published once an order has been paid for. The inventory
// service reserves its items.
var Succeeded = troupe.NewTopic[SucceededV1]("payment_succeeded", 1)

// SucceededV1 is the data of a [Succeeded] event, version 1. It passes on
// what the order's later steps need, so they need not ask the orders
// service.
type SucceededV1 struct {
	OrderID  string        `json:"order_id"`
	Customer string        `json:"customer"`
	Lines    []orders.Line `json:"lines"`
	// Amount is what was charged.
	Amount orders.Money `json:"amount"`
	// ChargeID is the payment provider's reference of the charge.
	ChargeID string `json:"charge_id"`
}

// OrderRef returns the order id; it makes SucceededV1 an [orders.StepEvent].
func (e SucceededV1) OrderRef() string { return e.OrderID }

// Summary describes the payment, as "charged 24.00 EUR (ch_1a2b3c4d5e6f)".
func (e SucceededV1) Summary() string { return fmt.Sprintf("charged %s (%s)", e.Amount, e.ChargeID) }

// Option tunes the payment service.
type Option func(*processor)

// FailRate makes the payment provider fail a fraction (0 to 1) of charge
// attempts with a transient error, to watch troupe retry them with backoff:
// each attempt of each order fails or not by a hash of the order id and the
// attempt, so a run can be repeated. Default 0.
func FailRate(f float64) Option { return func(p *processor) { p.failRate = f } }

// Register declares the payment service on app. log receives one line per
// charge; nil means the app's logger.
func Register(app *troupe.App, log *slog.Logger, opts ...Option) {
	if log == nil {
		log = app.Logger()
	}
	p := &processor{log: log, charges: make(map[string]string)}
	for _, o := range opts {
		o(p)
	}
	svc := app.Service("payment").Publishes(Succeeded)
	troupe.Subscribe(svc, orders.Placed, "charge", p.charge, troupe.Emits(Succeeded))
}

// processor stands in for a payment provider. It remembers the charge of
// each order, so that an order_placed delivered twice is charged once.
type processor struct {
	log      *slog.Logger
	failRate float64

	mu      sync.Mutex
	charges map[string]string // order id → charge id
}

// charge is the handler of orders.Placed.
func (p *processor) charge(ctx context.Context, ev troupe.Event[orders.PlacedV1]) error {
	o := ev.Data
	if p.fails(o.OrderID, ev.Attempt) {
		p.log.Warn(fmt.Sprintf("payment: provider timed out charging order %s (attempt %d); troupe retries it", o.OrderID, ev.Attempt))
		return errProviderTimeout
	}
	chargeID, again := p.chargeOnce(o.OrderID)
	if !again {
		p.log.Info(fmt.Sprintf("payment: charged order %s %s to %s", o.OrderID, o.Total, o.Customer))
	}
	// On a redelivery this publishes again; the event id is derived from the
	// event being handled, so the broker drops the copy.
	return troupe.Publish(ctx, Succeeded, SucceededV1{
		OrderID: o.OrderID, Customer: o.Customer, Lines: o.Lines, Amount: o.Total, ChargeID: chargeID,
	})
}

// errProviderTimeout is the injected transient failure of FailRate.
var errProviderTimeout = errors.New("payment provider timed out (injected by FailRate)")

// fails decides whether the injected provider fails this attempt.
func (p *processor) fails(orderID string, attempt int) bool {
	return InjectedFailure(orderID, attempt, p.failRate)
}

// InjectedFailure reports whether FailRate(rate) fails the given attempt to
// charge an order. The decision is a hash of the order id and the attempt,
// so it is the same on every run and in every process, and a test can tell
// which orders need many attempts (or fail every attempt and are
// dead-lettered).
func InjectedFailure(orderID string, attempt int, rate float64) bool {
	if rate <= 0 {
		return false
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", orderID, attempt)
	return float64(h.Sum64()%10000)/10000 < rate
}

// chargeOnce charges order id unless it was charged before, and returns the
// charge id and whether it already existed. A provider that can decline
// would return an error here; the handler would then decide between a retry
// and a failure event.
func (p *processor) chargeOnce(orderID string) (chargeID string, again bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.charges[orderID]; ok {
		return id, true
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	id := "ch_" + hex.EncodeToString(b)
	p.charges[orderID] = id
	return id, false
}
