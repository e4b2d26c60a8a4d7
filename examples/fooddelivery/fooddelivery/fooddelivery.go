// Package fooddelivery assembles the food-delivery example: six services
// that carry an order from the customer's click to a courier, or to a
// refund, by events alone. No service is in charge of the whole.
//
//	POST /orders → order ──order_placed──▶ payment ──payment_success──▶ restaurant
//	restaurant ──restaurant_confirmed_order──▶ order, notification, loyalty, delivery-partner
//	delivery-partner ──delivery_partner_assigned──▶ order, notification
//
// and when the restaurant cannot take a paid order (troupe.OnFailure):
//
//	restaurant ──restaurant_order_confirmation_failed──▶ payment, notification, order
//	payment ──payment_reversed──▶ notification, order
//
// Each service lives in its own package with the topics it publishes and a
// Register function; this package puts them in one app, and [Simulate]
// drives it with generated orders. The program in the parent directory
// runs it.
package fooddelivery

import (
	"context"
	"log/slog"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/deliverypartner"
	"github.com/troupe-go/troupe/examples/fooddelivery/loyalty"
	"github.com/troupe-go/troupe/examples/fooddelivery/notification"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
)

// DefaultName is the app's name when Config.Name is empty. It namespaces
// the app on the broker and starts its events' sources ("/fooddelivery/payment").
const DefaultName = "fooddelivery"

// Options tunes the services. The zero value is a restaurant that never
// fails and a payment service that never crashes.
type Options struct {
	Restaurant restaurant.Options
	Payment    payment.Options
}

// appHandler writes through the app's logger as it is when a record is
// logged.
type appHandler struct{ app *troupe.App }

func (h appHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.app.Logger().Handler().Enabled(ctx, l)
}

func (h appHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.app.Logger().Handler().Handle(ctx, r)
}

func (h appHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.app.Logger().Handler().WithAttrs(as)
}

func (h appHandler) WithGroup(name string) slog.Handler {
	return h.app.Logger().Handler().WithGroup(name)
}

// NewApp declares the food-delivery app with cfg and opts. An empty
// cfg.Name becomes [DefaultName]; the services log to cfg.Logger, or
// when it is nil to the app's logger as [troupe.App.Main] sets it up. Nothing runs until the app starts.
//
// An empty cfg.HTTPAddr keeps troupe's default, localhost:8080, in a
// process that runs a service with routes (order, payment, notification,
// loyalty); give each such process its own --http when they run apart.
func NewApp(cfg troupe.Config, opts Options) *troupe.App {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	app := troupe.New(cfg)
	log := cfg.Logger
	if log == nil {
		// The app's logger is settled only when it runs (App.Main builds
		// it from --log-format and --log-level), so look it up per record.
		log = slog.New(appHandler{app})
	}
	order.Register(app, log,
		order.Track(payment.Success, order.StatusPaid),
		order.Track(restaurant.ConfirmedOrder, order.StatusConfirmed),
		order.Track(deliverypartner.Assigned, order.StatusAssigned),
		order.Track(restaurant.ConfirmationFailed, order.StatusCancelled),
		order.Track(payment.Reversed, order.StatusRefunded),
	)
	payment.Register(app, log, opts.Payment, payment.ReverseOn(restaurant.ConfirmationFailed))
	restaurant.Register(app, log, opts.Restaurant)
	notification.Register(app, log)
	deliverypartner.Register(app, log)
	loyalty.Register(app, log)
	return app
}
