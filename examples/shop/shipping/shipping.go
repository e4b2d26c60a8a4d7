// Package shipping is the shipping service of the shop: once an order's
// items are reserved it books a parcel with a carrier and publishes
// [Arranged].
package shipping

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"math/big"
	"sync"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/inventory"
)

// Arranged is published once a carrier will pick up an order. The
// notification service tells the customer.
var Arranged = troupe.NewTopic[ArrangedV1]("shipping_arranged", 1)

// ArrangedV1 is the data of an [Arranged] event, version 1.
type ArrangedV1 struct {
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
	// Carrier delivers the parcel.
	Carrier string `json:"carrier"`
	// TrackingNumber is the carrier's reference of the parcel.
	TrackingNumber string `json:"tracking_number"`
}

// OrderRef returns the order id; it makes ArrangedV1 an [orders.StepEvent].
func (e ArrangedV1) OrderRef() string { return e.OrderID }

// Summary describes the shipment, as "ParcelCo, tracking PC4821096375".
func (e ArrangedV1) Summary() string {
	return fmt.Sprintf("%s, tracking %s", e.Carrier, e.TrackingNumber)
}

// carrier is the one carrier the shop works with.
const carrier = "ParcelCo"

// Register declares the shipping service on app. log receives one line per
// shipment; nil means the app's logger.
func Register(app *troupe.App, log *slog.Logger) {
	if log == nil {
		log = app.Logger()
	}
	d := &desk{log: log, tracking: make(map[string]string)}
	svc := app.Service("shipping").Publishes(Arranged)
	troupe.Subscribe(svc, inventory.Reserved, "ship", d.ship, troupe.Emits(Arranged))
}

// desk books parcels. It remembers each order's tracking number, so an
// order delivered twice is booked once.
type desk struct {
	log *slog.Logger

	mu       sync.Mutex
	tracking map[string]string // order id → tracking number
}

// ship is the handler of inventory.Reserved.
func (d *desk) ship(ctx context.Context, ev troupe.Event[inventory.ReservedV1]) error {
	o := ev.Data
	number, again := d.book(o.OrderID)
	if !again {
		d.log.Info(fmt.Sprintf("shipping: order %s goes with %s, tracking %s", o.OrderID, carrier, number))
	}
	return troupe.Publish(ctx, Arranged, ArrangedV1{
		OrderID: o.OrderID, Customer: o.Customer, Carrier: carrier, TrackingNumber: number,
	})
}

// book returns the tracking number of order id, booking a parcel the first
// time; again reports that it was booked before.
func (d *desk) book(orderID string) (number string, again bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, ok := d.tracking[orderID]; ok {
		return n, true
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(1e10)) // never fails, see crypto/rand.Read
	number = fmt.Sprintf("PC%010d", n)
	d.tracking[orderID] = number
	return number, false
}
