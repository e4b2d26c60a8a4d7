// Package shipping is the shipping service of the shop: once an order's
// items are reserved it books a parcel with a carrier and publishes
// [Arranged]. Its bookings, with their tracking numbers, are in its
// database.
package shipping

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/shop/inventory"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the shipping service's name in the app and on --services.
const ServiceName = "shipping"

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

var schema = []string{`CREATE TABLE IF NOT EXISTS shipping_bookings (
	order_id  TEXT PRIMARY KEY,
	carrier   TEXT NOT NULL,
	tracking  TEXT NOT NULL,
	booked_us BIGINT NOT NULL
)`}

// Register declares the shipping service on app, with its database from
// db, opened when the app starts in the process that runs the service. log
// receives one line per shipment; nil means the app's logger.
//
// Booking can only fail when the service's own database does: the
// subscription retries with backoff, then dead-letters the event, where
// the dlq command (or the dashboard) replays it once the database is back;
// meanwhile GET /orders counts the order as stuck.
func Register(app *troupe.App, log *slog.Logger, db *store.DB) *troupe.Service {
	if log == nil {
		log = app.Logger()
	}
	d := &desk{log: log, ob: store.Outbox(app, db, ServiceName, schema...)}
	svc := app.Service(ServiceName).Publishes(Arranged)
	outbox.Subscribe(svc, inventory.Reserved, "ship", d.ob, d.ship, troupe.Emits(Arranged))
	return svc
}

// desk books parcels.
type desk struct {
	log *slog.Logger
	ob  *outbox.Outbox
}

// ship is the handler of inventory.Reserved: it books a parcel, records
// the booking and publishes Arranged, in one transaction that also records
// the event as handled.
func (d *desk) ship(ctx context.Context, tx *sql.Tx, ev troupe.Event[inventory.ReservedV1]) error {
	o := ev.Data
	n, err := rand.Int(rand.Reader, big.NewInt(1e10))
	if err != nil {
		return err
	}
	number := fmt.Sprintf("PC%010d", n)
	// An order has one booking: a second reservation event of one order
	// (there is none, but a booking is not worth a doubt) gets the first.
	if _, err := tx.ExecContext(ctx, store.Q(d.ob, `INSERT INTO shipping_bookings (order_id, carrier, tracking, booked_us) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`), o.OrderID, carrier, number, time.Now().UnixMicro()); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, store.Q(d.ob, `SELECT tracking FROM shipping_bookings WHERE order_id = ?`), o.OrderID).Scan(&number); err != nil {
		return err
	}
	d.log.Info(fmt.Sprintf("shipping: order %s goes with %s, tracking %s", o.OrderID, carrier, number))
	return outbox.PublishTx(ctx, tx, Arranged, ArrangedV1{
		OrderID: o.OrderID, Customer: o.Customer, Carrier: carrier, TrackingNumber: number,
	})
}
