package troupetest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

// FailFirst makes a handler fail its first attempts at each event; the
// broker retries it until it succeeds.
func ExampleFailFirst() {
	t := newExampleT() // in a test: the *testing.T
	defer t.done()

	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop"}))
	attempts := make(chan int, 10)
	declareShop(app, troupetest.FailFirst(2, nil, func(ctx context.Context, ev troupe.Event[OrderPlaced]) error {
		attempts <- ev.Attempt
		return charge(ctx, ev)
	}), troupe.Backoff(10*time.Millisecond, 10*time.Millisecond))
	paid := troupetest.Observe(t, app, paymentDone)
	troupetest.Start(t, app)

	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "order-7")
	if err := troupe.Publish(ctx, orderPlaced, OrderPlaced{OrderID: "7", Total: 42}); err != nil {
		fmt.Println(err)
		return
	}
	paid.WaitCorrelation(t, "order-7")
	fmt.Println("the handler ran on attempt", <-attempts)
	// Output:
	// the handler ran on attempt 3
}

// DeadLetters waits for an event to end in a subscription's dead letters.
func ExampleDeadLetters() {
	t := newExampleT()
	defer t.done()

	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "shop"}))
	declareShop(app, charge) // charge rejects a zero total with a permanent error
	troupetest.Start(t, app)

	if err := troupe.Publish(app.Context(context.Background()), orderPlaced, OrderPlaced{OrderID: "8"}); err != nil {
		fmt.Println(err)
		return
	}
	for _, dl := range troupetest.DeadLetters(t, app, "payment.charge", 1) {
		fmt.Println(dl.Reason, dl.Attempts, dl.Error)
	}
	// Output:
	// permanent 1 permanent: order 8: total 0
}
