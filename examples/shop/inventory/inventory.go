// Package inventory is the inventory service of the shop: once an order is
// paid it reserves the order's items from stock and publishes [Reserved].
package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/examples/shop/payment"
)

// Reserved is published once an order's items are set aside for it. The
// shipping service ships them.
var Reserved = troupe.NewTopic[ReservedV1]("inventory_reserved", 1)

// ReservedV1 is the data of a [Reserved] event, version 1.
type ReservedV1 struct {
	OrderID  string        `json:"order_id"`
	Customer string        `json:"customer"`
	Lines    []orders.Line `json:"lines"`
	// ReservationID names the reservation, for picking in the warehouse.
	ReservationID string `json:"reservation_id"`
}

// OrderRef returns the order id; it makes ReservedV1 an [orders.StepEvent].
func (e ReservedV1) OrderRef() string { return e.OrderID }

// Summary describes the reservation, as "reserved 2×book".
func (e ReservedV1) Summary() string { return "reserved " + orders.DescribeLines(e.Lines) }

// ErrOutOfStock means the stock cannot cover an order.
var ErrOutOfStock = errors.New("out of stock")

// initialStock is what the warehouse holds when the service starts.
var initialStock = map[string]int{
	"book": 500,
	"lamp": 50,
	"mug":  200,
	"pen":  1000,
	"tea":  300,
}

// Register declares the inventory service on app. log receives one line per
// reservation; nil means the app's logger.
func Register(app *troupe.App, log *slog.Logger) {
	if log == nil {
		log = app.Logger()
	}
	w := &warehouse{log: log, stock: make(map[string]int), reserved: make(map[string]bool)}
	for sku, n := range initialStock {
		w.stock[sku] = n
	}
	svc := app.Service("inventory").Publishes(Reserved)
	troupe.Subscribe(svc, payment.Succeeded, "reserve", w.reserve, troupe.Emits(Reserved))
}

// warehouse keeps the stock in memory. The stock lives in one process, so
// run the inventory service in one process only.
type warehouse struct {
	log *slog.Logger

	mu       sync.Mutex
	stock    map[string]int  // sku → units on the shelf
	reserved map[string]bool // orders already reserved, so a redelivery takes nothing twice
}

// reserve is the handler of payment.Succeeded.
func (w *warehouse) reserve(ctx context.Context, ev troupe.Event[payment.SucceededV1]) error {
	o := ev.Data
	left, again, err := w.take(o.OrderID, o.Lines)
	if err != nil {
		// Waiting will not bring stock back, so retrying is pointless: the
		// event goes to the dead letters, and the order stays paid. A later
		// version publishes a failure event here, for payment to refund.
		w.log.Error(fmt.Sprintf("inventory: cannot reserve order %s: %v", o.OrderID, err))
		return troupe.Permanent(fmt.Errorf("reserve order %s: %w", o.OrderID, err))
	}
	if !again {
		w.log.Info(fmt.Sprintf("inventory: reserved %s for order %s (left: %s)", orders.DescribeLines(o.Lines), o.OrderID, left))
	}
	return troupe.Publish(ctx, Reserved, ReservedV1{
		OrderID: o.OrderID, Customer: o.Customer, Lines: o.Lines, ReservationID: "rsv-" + o.OrderID,
	})
}

// take removes the lines of order id from stock, all or nothing, and
// returns what is left of those SKUs. again reports that the order was
// reserved before and nothing was taken now.
func (w *warehouse) take(orderID string, lines []orders.Line) (left string, again bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.reserved[orderID] {
		want := make(map[string]int)
		for _, l := range lines {
			want[l.SKU] += l.Qty
		}
		for sku, n := range want {
			if have := w.stock[sku]; have < n {
				return "", false, fmt.Errorf("%w: %d×%s wanted, %d on the shelf", ErrOutOfStock, n, sku, have)
			}
		}
		for sku, n := range want {
			w.stock[sku] -= n
		}
		w.reserved[orderID] = true
	} else {
		again = true
	}
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = fmt.Sprintf("%d %s", w.stock[l.SKU], l.SKU)
	}
	return strings.Join(parts, ", "), again, nil
}
