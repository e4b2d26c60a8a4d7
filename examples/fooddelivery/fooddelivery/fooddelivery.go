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
// Register function, and keeps its state in its own database
// (examples/internal/store: a SQLite file per service in the data
// directory, or one PostgreSQL database with --db), so kill -9 and a
// restart forget nothing and do nothing twice. This package puts them in
// one app with its flags, and [Simulate] drives it with generated orders.
// The program in the parent directory runs it.
package fooddelivery

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/deliverypartner"
	"github.com/troupe-go/troupe/examples/fooddelivery/loyalty"
	"github.com/troupe-go/troupe/examples/fooddelivery/notification"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/store"
)

// DefaultName is the app's name when Config.Name is empty. It namespaces
// the app on the broker (and its schema on PostgreSQL) and starts its
// events' sources ("/fooddelivery/payment").
const DefaultName = "fooddelivery"

// Options tunes the app. The zero value is a restaurant that never fails,
// a payment service that never crashes, SQLite files in the data
// directory, no simulation and nothing printed. [NewApp] registers a flag
// for each of the first five fields, with the field's value as its
// default, and the app reads them when it starts or handles: a program
// that parses no flags (a test) keeps what it set.
type Options struct {
	// Restaurant tunes the restaurant service;
	// --restaurant-failure-rate sets Restaurant.FailureRate.
	Restaurant restaurant.Options
	// Payment tunes the payment service; --payment-crash-rate sets
	// Payment.CrashRate.
	Payment payment.Options
	// DB is where the services keep their state: --db, default
	// $FOODDELIVERY_DB, else SQLite files in the data directory.
	DB store.DB
	// Simulate, when above 0 (--simulate N), places that many generated
	// orders over the app's own HTTP API once it is ready, waits until each
	// is terminal, prints the reconciliation table to Stdout and stops the
	// process as SIGTERM would: App.Main then exits with status 0 when
	// every order ended in one terminal state and the money reconciles,
	// and 1 otherwise. A run killed midway resumes when started again with
	// the same --data (see [Simulation.Resume]). For programs that run the
	// app with App.Main.
	Simulate int
	// SimulateRate caps the simulation's orders per second
	// (--simulate-rate). Default 0: as fast as the app takes them.
	SimulateRate float64
	// Stdout and Stderr are where the program prints: the URLs to try once
	// the app is ready, and the simulation's progress (Stderr) and table
	// (Stdout). Default nil: nothing.
	Stdout, Stderr io.Writer
}

// flags registers the options' flags on fs, each with its field's value
// as default.
func (o *Options) flags(fs *flag.FlagSet) {
	fs.Var(share{&o.Restaurant.FailureRate, "0.2"}, "restaurant-failure-rate",
		"share `F` (0 to 1) of orders the restaurants fail: half rejected, half unanswered for a while or for good")
	fs.Var(share{&o.Payment.CrashRate, "0.05"}, "payment-crash-rate",
		"share `F` (0 to 1) of first attempts at a charge or refund that fail right after the gateway moved the money, to show that retries move none")
	o.DB.Flag(fs, "FOODDELIVERY_DB")
	fs.Var(count{&o.Simulate}, "simulate",
		"place `N` generated orders, wait until each is assigned or refunded, print a reconciliation table and exit (0: no simulation); a killed run resumes when started again on the same --data")
	fs.Var(rate{&o.SimulateRate}, "simulate-rate", "with --simulate, place at most `R` orders per second (0: as fast as they are taken)")
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

// NewApp declares the food-delivery app with cfg and opts (nil: the zero
// Options), and registers the options' flags on its command line. An empty
// cfg.Name becomes [DefaultName]; the services log to cfg.Logger, or when
// it is nil to the app's logger as [troupe.App.Main] sets it up. Nothing
// runs until the app starts. Keep opts unchanged once the app runs.
//
// An empty cfg.HTTPAddr keeps troupe's default, localhost:8080, in a
// process that runs a service with routes (order, payment, notification,
// loyalty); give each such process its own --http when they run apart.
//
// Starting fails with a usage error (App.Main's exit status 2) for a --db
// that is neither empty nor PostgreSQL, and for --simulate in a process
// without the order service or without HTTP; and with the database's
// error when a service's database does not open.
func NewApp(cfg troupe.Config, opts *Options) *troupe.App {
	if opts == nil {
		opts = &Options{}
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	app := troupe.New(cfg)
	app.Flags(opts.flags)
	log := cfg.Logger
	if log == nil {
		// The app's logger is settled only when it runs (App.Main builds
		// it from --log-format and --log-level), so look it up per record.
		log = slog.New(appHandler{app})
	}
	// Before the services' databases open, so a wrong URL is a usage
	// error, said once.
	app.OnStart(func(context.Context) error {
		if err := opts.DB.Check(); err != nil {
			return usage(opts, err.Error())
		}
		return nil
	})
	db := &opts.DB
	order.Register(app, log, db,
		order.Track(payment.Success, order.StatusPaid),
		order.Track(restaurant.ConfirmedOrder, order.StatusConfirmed),
		order.Track(deliverypartner.Assigned, order.StatusAssigned),
		order.Track(restaurant.ConfirmationFailed, order.StatusCancelled),
		order.Track(payment.Reversed, order.StatusRefunded),
	)
	payment.Register(app, log, db, &opts.Payment, payment.ReverseOn(restaurant.ConfirmationFailed))
	restaurant.Register(app, log, &opts.Restaurant)
	notification.Register(app, log, db)
	deliverypartner.Register(app, log, db)
	loyalty.Register(app, log, db)
	ready(app, opts)
	return app
}

// usage returns a usage error (App.Main exits with status 2 without
// printing it), after printing msg to opts.Stderr.
func usage(opts *Options, msg string) error {
	if opts.Stderr != nil {
		fmt.Fprintln(opts.Stderr, DefaultName+": "+msg)
	}
	return troupe.UsageErrorf("%s", msg)
}

// stderr is opts.Stderr, or io.Discard.
func stderr(opts *Options) io.Writer {
	if opts.Stderr != nil {
		return opts.Stderr
	}
	return io.Discard
}
