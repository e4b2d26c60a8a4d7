package troupe_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

func TestCircuitBreakerPausesAndProbes(t *testing.T) {
	onBrokers(t, testBreakerPausesAndProbes)
}

func testBreakerPausesAndProbes(t *testing.T, newApp func(troupe.Config) *troupe.App) {
	app := newApp(troupe.Config{Name: "breaker"})
	app.Service("orders").Publishes(testOrderPlaced)
	svc := app.Service("payment")
	var (
		down       atomic.Bool
		mu         sync.Mutex
		failing    int // attempts that failed
		probes     int // attempts made while half-open
		sawOpen    int // attempts started while the breaker was open: must stay 0
		done       = make(map[string]bool)
		allHandled = make(chan struct{})
		sub        *troupe.Subscription
		total      = 10
	)
	down.Store(true)
	sub = troupe.Subscribe(svc, testOrderPlaced, "charge", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		mu.Lock()
		defer mu.Unlock()
		switch sub.BreakerState() {
		case troupe.BreakerOpen:
			sawOpen++
		case troupe.BreakerHalfOpen:
			probes++
			if probes == 2 {
				down.Store(false) // the dependency comes back before the second probe
			}
		}
		if down.Load() {
			failing++
			return errors.New("payment provider down")
		}
		done[ev.Data.OrderID] = true
		if len(done) == total {
			close(allHandled)
		}
		return nil
	}, troupe.CircuitBreaker(3, 50*time.Millisecond), troupe.Concurrency(1),
		troupe.MaxAttempts(100), troupe.Backoff(time.Millisecond, time.Millisecond))
	troupetest.Start(t, app)
	ctx := app.Context(context.Background())
	for i := range total {
		if err := troupe.Publish(ctx, testOrderPlaced, orderPlaced{OrderID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-allHandled:
	case <-time.After(troupetest.DefaultTimeout):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("handled %d of %d; %d failing attempts, %d probes", len(done), total, failing, probes)
	}
	mu.Lock()
	defer mu.Unlock()
	if sawOpen != 0 {
		t.Errorf("%d attempts ran while the breaker was open", sawOpen)
	}
	// 3 failures open it, the first probe fails, the second succeeds.
	if failing != 4 || probes != 2 {
		t.Errorf("%d failing attempts and %d probes, want 4 and 2", failing, probes)
	}
	if s := sub.BreakerState(); s != troupe.BreakerClosed {
		t.Errorf("breaker %s after recovery, want closed", s)
	}
}

func TestCircuitBreakerIgnoresPermanentErrors(t *testing.T) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "breaker"}))
	app.Service("orders").Publishes(testOrderPlaced)
	sub := troupe.Subscribe(app.Service("payment"), testOrderPlaced, "charge", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		return troupe.Permanent(errors.New("card number invalid"))
	}, troupe.CircuitBreaker(2, time.Hour))
	troupetest.Start(t, app)
	ctx := app.Context(context.Background())
	for i := range 5 {
		if err := troupe.Publish(ctx, testOrderPlaced, orderPlaced{OrderID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	troupetest.DeadLetters(t, app, "payment.charge", 5)
	if s := sub.BreakerState(); s != troupe.BreakerClosed {
		t.Errorf("breaker %s after permanent errors, want closed", s)
	}
}
