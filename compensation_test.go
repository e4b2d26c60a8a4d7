package troupe_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

type confirmFailed struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
	Attempt int    `json:"attempt"`
}

var testConfirmFailed = troupe.NewTopic[confirmFailed]("confirm_failed", 1)

// compensatingApp declares orders → restaurant.confirm, which fails with
// fail and compensates with confirm_failed; a sentinel order ("sentinel")
// always succeeds.
func compensatingApp(t *testing.T, newApp func(troupe.Config) *troupe.App, fail error, opts ...troupe.SubscribeOption) (*troupe.App, *troupetest.Observer[confirmFailed], *atomic.Int32, chan string) {
	app := newApp(troupe.Config{Name: "comp"})
	app.Service("orders").Publishes(testOrderPlaced)
	restaurant := app.Service("restaurant").Publishes(testConfirmFailed)
	var calls atomic.Int32
	handled := make(chan string, 16)
	opts = append(opts, troupe.OnFailure(testConfirmFailed, func(ev troupe.Event[orderPlaced], cause error) confirmFailed {
		return confirmFailed{OrderID: ev.Data.OrderID, Reason: cause.Error(), Attempt: ev.Attempt}
	}), troupe.Concurrency(1))
	troupe.Subscribe(restaurant, testOrderPlaced, "confirm", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		if ev.Data.OrderID == "sentinel" {
			handled <- ev.Data.OrderID
			return nil
		}
		calls.Add(1)
		return fail
	}, opts...)
	failed := troupetest.Observe(t, app, testConfirmFailed)
	troupetest.Start(t, app)
	return app, failed, &calls, handled
}

func TestOnFailureCompensatesAfterTheLastAttempt(t *testing.T) {
	onBrokers(t, testCompensatesAfterTheLastAttempt)
}

func testCompensatesAfterTheLastAttempt(t *testing.T, newApp func(troupe.Config) *troupe.App) {
	app, failed, calls, handled := compensatingApp(t, newApp, errors.New("kitchen closed"),
		troupe.MaxAttempts(3), troupe.Backoff(5*time.Millisecond, 5*time.Millisecond))
	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "order-9")
	if err := troupe.Publish(ctx, testOrderPlaced, orderPlaced{OrderID: "9"}); err != nil {
		t.Fatal(err)
	}
	ev := failed.WaitCorrelation(t, "order-9")
	if ev.Data.OrderID != "9" || ev.Data.Attempt != 3 || !strings.Contains(ev.Data.Reason, "kitchen closed") {
		t.Errorf("failure event %+v, want order 9 after attempt 3 with the cause", ev.Data)
	}
	if ev.CausationID == "" || ev.Source != "/"+app.Name()+"/restaurant" {
		t.Errorf("failure event envelope %+v: want the failed event as cause, published by restaurant", ev.Envelope)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3", n)
	}
	// With one worker, the sentinel is handled only after the failed event
	// was settled: it must have been acknowledged, not dead-lettered.
	if err := troupe.Publish(app.Context(context.Background()), testOrderPlaced, orderPlaced{OrderID: "sentinel"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(troupetest.DefaultTimeout):
		t.Fatal("sentinel never handled")
	}
	dls, err := app.DeadLetters(context.Background(), "restaurant.confirm", 0)
	if err != nil || len(dls) != 0 {
		t.Errorf("dead letters = %d (%v), want none: a compensated event is settled", len(dls), err)
	}
	if n := len(failed.Events()); n != 1 {
		t.Errorf("%d failure events, want 1", n)
	}
}

func TestOnFailureCompensatesAPermanentErrorAtOnce(t *testing.T) {
	onBrokers(t, testCompensatesAPermanentErrorAtOnce)
}

func testCompensatesAPermanentErrorAtOnce(t *testing.T, newApp func(troupe.Config) *troupe.App) {
	app, failed, calls, _ := compensatingApp(t, newApp, troupe.Permanent(errors.New("dish unknown")))
	if err := troupe.Publish(troupe.WithCorrelationID(app.Context(context.Background()), "order-3"), testOrderPlaced, orderPlaced{OrderID: "3"}); err != nil {
		t.Fatal(err)
	}
	ev := failed.WaitCorrelation(t, "order-3")
	if ev.Data.Attempt != 1 || calls.Load() != 1 || !strings.Contains(ev.Data.Reason, "dish unknown") {
		t.Errorf("failure event %+v after %d calls, want one attempt", ev.Data, calls.Load())
	}
}

func TestOnFailureIsCheckedAtStart(t *testing.T) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "comp"}))
	app.Service("orders").Publishes(testOrderPlaced)
	restaurant := app.Service("restaurant") // does not declare confirm_failed
	troupe.Subscribe(restaurant, testOrderPlaced, "confirm", func(context.Context, troupe.Event[orderPlaced]) error { return nil },
		troupe.OnFailure(testConfirmFailed, func(ev troupe.Event[paymentDone], _ error) confirmFailed { return confirmFailed{} }))
	err := app.Validate()
	for _, want := range []string{
		`compensates with topic "confirm_failed", which its service restaurant does not publish: add .Publishes(ConfirmFailed) to service restaurant`,
		`handles troupe_test.orderPlaced, but its OnFailure builds from Event[troupe_test.paymentDone]`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation error lacks %q:\n%v", want, err)
		}
	}
	sub := restaurant.Subscriptions()[0]
	if c := sub.Compensation(); c == nil || c.Name() != "confirm_failed" {
		t.Errorf("Compensation() = %v", c)
	}
}
