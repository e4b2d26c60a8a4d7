package troupe_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

// A handler that publishes and then fails is retried; the retry publishes
// the same event id, so the broker drops the copy and downstream sees the
// event once.
func TestRetriedHandlerDoesNotPublishTwice(t *testing.T) {
	a := newApp(t)
	a.Service("orders").Publishes(testOrderPlaced)
	payment := a.Service("payment").Publishes(testPaymentDone)
	ids := make(chan string, 10)
	troupe.Subscribe(payment, testOrderPlaced, "charge",
		func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
			if err := troupe.Publish(ctx, testPaymentDone, paymentDone{OrderID: ev.Data.OrderID}); err != nil {
				return err
			}
			if ev.Attempt == 1 {
				return errors.New("crashed after publishing")
			}
			ids <- "retried"
			return nil
		}, troupe.Backoff(10*time.Millisecond, 10*time.Millisecond))
	var mu sync.Mutex
	var got []troupe.Event[paymentDone]
	troupe.Subscribe(a.Service("shipping"), testPaymentDone, "ship",
		func(ctx context.Context, ev troupe.Event[paymentDone]) error {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
			return nil
		}, troupe.Concurrency(1))
	startApp(t, a)
	if err := troupe.Publish(a.Context(context.Background()), testOrderPlaced, orderPlaced{OrderID: "1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ids:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler was not retried")
	}
	// Prove the absence of a second copy with a later event: a second order
	// goes through the same path, and shipping handles one event at a time
	// in stream order, so when the second order's payment has arrived, a
	// copy of the first would have arrived before it.
	if err := troupe.Publish(a.Context(context.Background()), testOrderPlaced, orderPlaced{OrderID: "2"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the second order's payment", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && got[len(got)-1].Data.OrderID == "2"
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Data.OrderID != "1" {
		var orders []string
		for _, ev := range got {
			orders = append(orders, ev.Data.OrderID)
		}
		t.Fatalf("shipping saw payments for orders %v, want [1 2]: the retry published a second copy", orders)
	}
}

// Two subscriptions handling one event and publishing the same topic get
// different ids: the id includes the subscription, so the broker does not
// drop one of them as a duplicate.
func TestDerivedIDsDifferPerSubscription(t *testing.T) {
	a := newApp(t)
	a.Service("orders").Publishes(testOrderPlaced)
	payment := a.Service("payment").Publishes(testPaymentDone)
	h := func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		return troupe.Publish(ctx, testPaymentDone, paymentDone{OrderID: ev.Data.OrderID})
	}
	troupe.Subscribe(payment, testOrderPlaced, "card", h)
	troupe.Subscribe(payment, testOrderPlaced, "invoice", h)
	seen := make(chan string, 4)
	troupe.Subscribe(a.Service("shipping"), testPaymentDone, "ship",
		func(ctx context.Context, ev troupe.Event[paymentDone]) error {
			seen <- ev.ID
			return nil
		})
	startApp(t, a)
	if err := troupe.Publish(a.Context(context.Background()), testOrderPlaced, orderPlaced{OrderID: "1"}); err != nil {
		t.Fatal(err)
	}
	var first, second string
	for _, id := range []*string{&first, &second} {
		select {
		case *id = <-seen:
		case <-time.After(30 * time.Second):
			t.Fatal("a payment event is missing: did the broker drop one as a duplicate?")
		}
	}
	if first == second {
		t.Fatalf("both subscriptions published id %s", first)
	}
}

// Publishing again with the same idempotency key gives the same ids, so the
// broker drops the copy; another key gives other ids.
func TestIdempotencyKeyAtTheEdge(t *testing.T) {
	a := newApp(t)
	a.Service("orders").Publishes(testOrderPlaced)
	var mu sync.Mutex
	var got []troupe.Event[orderPlaced]
	troupe.Subscribe(a.Service("payment"), testOrderPlaced, "charge",
		func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
			return nil
		}, troupe.Concurrency(1))
	startApp(t, a)
	base := a.Context(context.Background())
	for _, key := range []string{"order-1", "order-1", "order-2"} { // a client retry, then another order
		ctx := troupe.WithIdempotencyKey(troupe.WithCorrelationID(base, key), key)
		if err := troupe.Publish(ctx, testOrderPlaced, orderPlaced{OrderID: key}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "order-2", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && got[len(got)-1].Data.OrderID == "order-2"
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Data.OrderID != "order-1" || got[0].ID == got[1].ID {
		t.Fatalf("handled %d events %+v; want order-1 once, then order-2", len(got), got)
	}
	if got[0].CorrelationID != "order-1" {
		t.Errorf("correlation %q, want order-1", got[0].CorrelationID)
	}
}
