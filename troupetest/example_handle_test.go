package troupetest_test

import (
	"context"
	"fmt"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

// Handle runs one handler on one event, without a broker, and shows what it
// published. Ids derived from a fixed event id are fixed too.
func ExampleHandle() {
	t := newExampleT() // in a test: the *testing.T
	defer t.done()

	res := troupetest.Handle(t, orderPlaced, charge, OrderPlaced{OrderID: "7", Total: 42},
		troupetest.AppName("shop"),
		troupetest.As("payment.charge"),
		troupetest.Publishes(paymentDone),
		troupetest.WithID("order-placed-1"),
		troupetest.WithCorrelationID("order-7"))
	fmt.Println("error:", res.Err, "outcome:", res.Outcome)
	for _, ev := range troupetest.Events(t, res.Published, paymentDone) {
		fmt.Println(ev.Type, ev.Data.OrderID, ev.Source)
		fmt.Println("id:", ev.ID)
		fmt.Println("correlation:", ev.CorrelationID, "causation:", ev.CausationID)
	}
	// Output:
	// error: <nil> outcome: handled
	// payment_done.v1 7 /shop/payment
	// id: 7dc21b07-b2b0-547d-af6e-2febdb534d18
	// correlation: order-7 causation: order-placed-1
}

// Deliver hands an event to a subscription of an app built on a Recorder,
// so the handler runs as the app wires it: here, its last attempt.
func ExampleDeliver() {
	t := newExampleT()
	defer t.done()

	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop", Transport: troupetest.NewRecorder()}))
	app.Service("orders").Publishes(orderPlaced)
	troupe.Subscribe(app.Service("payment"), orderPlaced, "charge",
		func(ctx context.Context, ev troupe.Event[OrderPlaced]) error {
			return fmt.Errorf("card service down (attempt %d)", ev.Attempt)
		}, troupe.MaxAttempts(3))

	res := troupetest.Deliver(t, app, "payment.charge", OrderPlaced{OrderID: "7"}, troupetest.WithAttempt(2))
	fmt.Println(res.Err, "→", res.Outcome)
	res = troupetest.Deliver(t, app, "payment.charge", OrderPlaced{OrderID: "7"}, troupetest.WithAttempt(3))
	fmt.Println(res.Err, "→", res.Outcome)
	// Output:
	// card service down (attempt 2) → retried
	// card service down (attempt 3) → dead-lettered
}

// A Recorder also keeps what the app publishes outside handlers, such as
// from an HTTP route or app.Context.
func ExampleRecorder() {
	t := newExampleT()
	defer t.done()

	rec := troupetest.NewRecorder()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop", Transport: rec}))
	app.Service("orders").Publishes(orderPlaced)
	troupetest.Start(t, app)

	ctx := troupe.WithIdempotencyKey(troupe.WithCorrelationID(app.Context(context.Background()), "order-7"), "order-7")
	if err := troupe.Publish(ctx, orderPlaced, OrderPlaced{OrderID: "7", Total: 42}); err != nil {
		fmt.Println(err)
	}
	for _, m := range rec.Published() {
		fmt.Println(m.Type, m.ID, m.CorrelationID, string(m.Data))
	}
	// Output:
	// order_placed.v1 4f53061a-ad40-5563-99ce-afb8358491bf order-7 {"order_id":"7","total":42}
}
