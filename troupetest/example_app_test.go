package troupetest_test

import (
	"context"
	"fmt"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

// Start runs a whole app on the embedded broker; an Observer declared
// before it waits for the business transaction to reach a topic.
func ExampleObserve() {
	t := newExampleT() // in a test: the *testing.T
	defer t.done()

	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop"}))
	declareShop(app, charge)
	paid := troupetest.Observe(t, app, paymentDone) // before Start
	troupetest.Start(t, app)

	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "order-7")
	if err := troupe.Publish(ctx, orderPlaced, OrderPlaced{OrderID: "7", Total: 42}); err != nil {
		fmt.Println(err)
		return
	}
	ev := paid.WaitCorrelation(t, "order-7")
	fmt.Println(ev.Type, ev.Data.OrderID, ev.Source, ev.CorrelationID)
	// Output:
	// payment_done.v1 7 /shop/payment order-7
}

// Wait takes any predicate; Events lists what the observer saw, in the
// topic's order, including events published before it started.
func ExampleObserver_Wait() {
	t := newExampleT()
	defer t.done()

	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop"}))
	declareShop(app, charge)
	placed := troupetest.Observe(t, app, orderPlaced)
	troupetest.Start(t, app)

	ctx := app.Context(context.Background())
	for _, id := range []string{"1", "2", "3"} {
		if err := troupe.Publish(ctx, orderPlaced, OrderPlaced{OrderID: id, Total: 1}); err != nil {
			fmt.Println(err)
			return
		}
	}
	placed.Wait(t, func(ev troupe.Event[OrderPlaced]) bool { return ev.Data.OrderID == "3" })
	for _, ev := range placed.Events() {
		fmt.Print(ev.Data.OrderID, " ")
	}
	fmt.Println()
	// Output:
	// 1 2 3
}

// Config fills in test defaults: an embedded broker in a temporary
// directory, no HTTP server, quiet logs.
func ExampleConfig() {
	t := newExampleT()
	defer t.done()

	cfg := troupetest.Config(t, troupe.Config{Name: "shop"})
	fmt.Println(cfg.Broker, cfg.HTTPAddr, cfg.DataDir != "", cfg.Logger != nil)
	// Output:
	// embedded: off true true
}

// Start starts the app and stops it when the test ends.
func ExampleStart() {
	t := newExampleT()
	defer t.done()

	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop"}))
	declareShop(app, charge)
	troupetest.Start(t, app)
	fmt.Println(app.Transport() != nil)
	// Output:
	// true
}
