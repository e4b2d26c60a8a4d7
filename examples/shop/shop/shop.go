// Package shop assembles the order fulfilment example: five services that
// hand an order on by events, with no service in charge of the whole.
//
//	POST /orders → orders ──order_placed──▶ payment ──payment_succeeded──▶ inventory
//	    ──inventory_reserved──▶ shipping ──shipping_arranged──▶ notification ──customer_notified
//
// and when an order cannot go on:
//
//	payment ──payment_declined──▶ notification                      the card was declined: nothing charged
//	inventory ──inventory_reservation_failed──▶ payment (OnFailure)  out of stock after payment
//	payment ──payment_failed──▶ payment (OnFailure)                  the provider never answered
//	payment ──payment_refunded──▶ notification                      whatever was charged is given back
//
// Every order ends notified (shipped, and the customer told) or cancelled
// (with its reason, refunded if it was charged, and the customer told). The
// orders service follows every one of those events to show each order's
// status and timeline at GET /orders/{id}.
//
// Each service lives in its own package with the topics it publishes and a
// Register function, and keeps its state in a database of its own (the
// store package); this package only puts them in one app and registers
// their flags. The program in the parent directory runs it.
package shop

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/shop/inventory"
	"github.com/troupe-go/troupe/examples/shop/notification"
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/examples/shop/payment"
	"github.com/troupe-go/troupe/examples/shop/shipping"
)

// DefaultName is the app's name when Config.Name is empty. It namespaces
// the app on the broker, names its PostgreSQL schema, and starts the
// source of its events ("/shop/payment").
const DefaultName = "shop"

// Options tunes the shop. Each field has a flag, registered on the app's
// command line with the field's value as its default, so a program that
// sets a field and parses flags keeps it unless a flag says otherwise.
// The services read them when the app starts or when they handle an event.
type Options struct {
	// DB is where the services keep their state (--db, default
	// $SHOP_DB): empty for one SQLite file per service in the data
	// directory, or a postgres:// URL.
	DB store.DB
	// Payment injects failures: --fail-rate (charge attempts whose answer
	// the provider loses after taking the money; retried) and
	// --decline-rate (orders whose card is declined; cancelled). Default 0.
	Payment payment.Options
	// Inventory sets --initial-stock, the stock a new database starts with.
	// Default inventory.DefaultStock.
	Inventory inventory.Options
}

// NewApp declares the shop app with cfg and opts (nil for the defaults),
// and registers the shop's flags (--db, --fail-rate, --decline-rate,
// --initial-stock) on the app's command line. An empty cfg.Name becomes
// [DefaultName]. The services log to cfg.Logger, or to the app's logger
// when it is nil. Nothing runs until the app is started.
//
// An empty cfg.HTTPAddr keeps troupe's default, localhost:8080. When the
// services run in several processes, give each its own --http (or off):
// orders serves /orders, payment /ledger, inventory /stock and
// notification /notifications.
func NewApp(cfg troupe.Config, opts *Options) *troupe.App {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if opts == nil {
		opts = &Options{}
	}
	if opts.Inventory.InitialStock == nil {
		opts.Inventory.InitialStock = inventory.DefaultStock()
	}
	app := troupe.New(cfg)
	app.Flags(func(fs *flag.FlagSet) { registerFlags(fs, opts) })
	log := cfg.Logger // nil: each service logs through the app's logger
	db := &opts.DB
	orders.Register(app, log, db,
		orders.Track(payment.Succeeded, orders.StatusPaid),
		orders.Track(payment.Declined, orders.StatusDeclined),
		orders.Track(payment.Failed, orders.StatusPaymentFailed),
		orders.Track(inventory.Reserved, orders.StatusReserved),
		orders.Track(inventory.ReservationFailed, orders.StatusReservationFailed),
		orders.Track(shipping.Arranged, orders.StatusShipped),
		orders.Track(payment.Refunded, orders.StatusRefunded),
		orders.TrackWith(notification.CustomerNotified, func(e notification.CustomerNotifiedV1) orders.Status {
			if e.Told() == notification.SubjectShipped {
				return orders.StatusNotified
			}
			return orders.StatusCancelled
		}),
	)
	payment.Register(app, log, db, &opts.Payment, payment.RefundOn(inventory.ReservationFailed))
	inventory.Register(app, log, db, &opts.Inventory)
	shipping.Register(app, log, db)
	notification.Register(app, log, db)
	return app
}

// registerFlags puts the shop's options on fs, each with its current
// value as default.
func registerFlags(fs *flag.FlagSet, opts *Options) {
	opts.DB.Flag(fs, "SHOP_DB")
	fs.Var(fraction{&opts.Payment.FailRate}, "fail-rate",
		"share `F` (0 to 1) of charge attempts whose answer the payment provider loses after taking the money; troupe retries them, and the idempotency key keeps the charge single (default "+
			fmtFraction(opts.Payment.FailRate)+")")
	fs.Var(fraction{&opts.Payment.DeclineRate}, "decline-rate",
		"share `F` (0 to 1) of orders whose card the payment provider declines; they end cancelled, charged nothing (default "+
			fmtFraction(opts.Payment.DeclineRate)+")")
	fs.Var(opts.Inventory.InitialStock, "initial-stock",
		"units per SKU (`sku=units,...`) a new database starts with; SKUs not named keep their default, and a database that has stock keeps it")
}

// fraction is a flag.Value for a share from 0 to 1.
type fraction struct{ p *float64 }

func (f fraction) String() string {
	if f.p == nil {
		return "0"
	}
	return fmtFraction(*f.p)
}

func (f fraction) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 1 {
		return fmt.Errorf("give a fraction from 0 to 1, such as 0.3")
	}
	*f.p = v
	return nil
}

func fmtFraction(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
