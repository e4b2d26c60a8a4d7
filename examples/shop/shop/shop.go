// Package shop assembles the order fulfilment example: five services that
// hand an order on by events, with no service in charge of the whole.
//
//	POST /orders → orders ──order_placed──▶ payment ──payment_succeeded──▶ inventory
//	    ──inventory_reserved──▶ shipping ──shipping_arranged──▶ notification ──customer_notified
//
// The orders service also follows every one of those events to show each
// order's status and timeline at GET /orders/{id}.
//
// Each service lives in its own package with the topics it publishes and a
// Register function; this package only puts them in one app. The program in
// the parent directory runs it.
package shop

import (
	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/inventory"
	"github.com/troupe-go/troupe/examples/shop/notification"
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/examples/shop/payment"
	"github.com/troupe-go/troupe/examples/shop/shipping"
)

// DefaultName is the app's name when Config.Name is empty. It prefixes the
// app's streams on the broker and the source of its events ("/shop/payment").
const DefaultName = "shop"

// NewApp declares the shop app with cfg. An empty cfg.Name becomes
// [DefaultName]. The services log to cfg.Logger, or the app's logger when
// it is nil. Options inject failures (see [FailRate]). Nothing runs until
// the app is started.
//
// An empty cfg.HTTPAddr keeps troupe's default: localhost:8080 in a process
// that runs the orders service, which owns the shop's routes, and no HTTP
// server in a process that runs only services without routes. Setting it
// here would make every process of a multi-process run claim the same port.
func NewApp(cfg troupe.Config, opts ...Option) *troupe.App {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	log := cfg.Logger // nil: each service logs through the app's logger
	app := troupe.New(cfg)
	orders.Register(app, log,
		orders.Track(payment.Succeeded, orders.StatusPaid),
		orders.Track(inventory.Reserved, orders.StatusReserved),
		orders.Track(shipping.Arranged, orders.StatusShipped),
		orders.Track(notification.CustomerNotified, orders.StatusNotified),
	)
	payment.Register(app, log, payment.FailRate(o.failRate))
	inventory.Register(app, log)
	shipping.Register(app, log)
	notification.Register(app, log)
	return app
}

// Option tunes the shop.
type Option func(*options)

type options struct{ failRate float64 }

// FailRate makes the payment provider fail that fraction (0 to 1) of charge
// attempts with a transient error, which troupe retries with backoff; an
// order whose attempts all fail ends in the payment subscription's dead
// letters. Default 0.
func FailRate(f float64) Option { return func(o *options) { o.failRate = f } }
