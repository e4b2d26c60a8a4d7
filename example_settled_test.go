package troupe_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/troupe-go/troupe"
)

type cardCharged struct {
	OrderID string `json:"order_id"`
}

var chargeRequested = troupe.NewTopic[cardCharged]("charge_requested", 1)

// A Settled middleware is told what became of every attempt at handling an
// event, as troupe decided it once for the broker: the outcome, and for a
// retry its delay. Journals, metrics, traces and dashboards are built this
// way; none of them decides the outcome again from the handler's error.
func ExampleMiddleware_settled() {
	dir, _ := os.MkdirTemp("", "settled-example")
	defer os.RemoveAll(dir)
	app := troupe.New(troupe.Config{Name: "shop", DataDir: dir, HTTPAddr: "off", Logger: slog.New(slog.DiscardHandler)})
	app.Service("orders").Publishes(chargeRequested)
	troupe.Subscribe(app.Service("payment"), chargeRequested, "charge",
		func(_ context.Context, ev troupe.Event[cardCharged]) error {
			if ev.Attempt == 1 {
				return troupe.RetryAfter(10*time.Millisecond, errors.New("card service busy"))
			}
			return nil
		})

	done := make(chan struct{})
	app.Use(troupe.Middleware{Name: "outcomes", Settled: func(sub *troupe.Subscription) troupe.SettledFunc {
		return func(_ context.Context, s troupe.Settlement) {
			fmt.Println(sub, "attempt", s.Delivery.Attempt, s.Outcome, s.Delay, s.Err)
			if s.Outcome == troupe.Handled {
				close(done)
			}
		}
	}})

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)
	if err := troupe.Publish(app.Context(ctx), chargeRequested, cardCharged{OrderID: "7"}); err != nil {
		panic(err)
	}
	<-done
	// Output:
	// payment.charge attempt 1 retried 10ms retry after 10ms: card service busy
	// payment.charge attempt 2 handled 0s <nil>
}
