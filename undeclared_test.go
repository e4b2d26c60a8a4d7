package troupe_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

// A handler that publishes a topic its service does not declare fails
// fast with the fix; one that publishes a declared topic its subscription
// does not list in Emits works, and the edge is recorded as undeclared.
func TestUndeclaredPublishes(t *testing.T) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "undeclared"}))
	app.Service("orders").Publishes(testOrderPlaced)
	billing := app.Service("billing").Publishes(testPaymentDone)
	errs := make(chan error, 4)
	troupe.Subscribe(app.Service("payment"), testOrderPlaced, "charge", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		errs <- troupe.Publish(ctx, testPaymentDone, paymentDone{OrderID: ev.Data.OrderID})
		return nil
	})
	troupe.Subscribe(billing, testOrderPlaced, "invoice", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		errs <- troupe.Publish(ctx, testPaymentDone, paymentDone{OrderID: ev.Data.OrderID})
		return nil
	})
	troupetest.Start(t, app)
	if err := troupe.Publish(app.Context(context.Background()), testOrderPlaced, orderPlaced{OrderID: "1"}); err != nil {
		t.Fatal(err)
	}
	var failed, ok int
	for range 2 {
		select {
		case err := <-errs:
			switch {
			case err == nil:
				ok++
			case errors.Is(err, troupe.ErrUndeclaredTopic) && strings.Contains(err.Error(), "service payment does not declare it: add .Publishes(PaymentDone) to service payment"):
				failed++
			default:
				t.Errorf("publish: %v", err)
			}
		case <-time.After(troupetest.DefaultTimeout):
			t.Fatal("handlers did not run")
		}
	}
	if failed != 1 || ok != 1 {
		t.Errorf("%d publishes refused and %d accepted, want 1 and 1", failed, ok)
	}
	got := app.UndeclaredEmits()
	if len(got) != 1 || got[0] != (troupe.UndeclaredEmit{Subscription: "billing.invoice", Topic: "payment_done"}) {
		t.Errorf("UndeclaredEmits() = %v, want billing.invoice → payment_done", got)
	}
}
