package troupe_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

type orderPlaced struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

type paymentDone struct {
	OrderID string `json:"order_id"`
}

var (
	testOrderPlaced = troupe.NewTopic[orderPlaced]("order_placed", 1)
	testPaymentDone = troupe.NewTopic[paymentDone]("payment_done", 1)
)

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// startApp starts a on a fresh embedded broker and stops it at cleanup.
func startApp(t *testing.T, a *troupe.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

func newApp(t *testing.T) *troupe.App {
	return troupe.New(troupe.Config{Name: "apptest", DataDir: t.TempDir(), HTTPAddr: "off", Logger: quietLogger()})
}

func TestChoreographyCarriesTheTransaction(t *testing.T) {
	a := newApp(t)
	orders := a.Service("orders").Publishes(testOrderPlaced)
	payment := a.Service("payment").Publishes(testPaymentDone)
	got := make(chan troupe.Event[paymentDone], 1)
	var placed troupe.Envelope
	var mu sync.Mutex
	troupe.Subscribe(payment, testOrderPlaced, "charge", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		mu.Lock()
		placed = ev.Envelope
		mu.Unlock()
		return troupe.Publish(ctx, testPaymentDone, paymentDone{OrderID: ev.Data.OrderID})
	})
	troupe.Subscribe(orders, testPaymentDone, "track", func(ctx context.Context, ev troupe.Event[paymentDone]) error {
		got <- ev
		return nil
	})
	startApp(t, a)
	ctx := troupe.WithCorrelationID(a.Context(context.Background()), "order-7")
	if err := troupe.Publish(ctx, testOrderPlaced, orderPlaced{OrderID: "7", Total: 42}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		mu.Lock()
		defer mu.Unlock()
		if ev.Data.OrderID != "7" {
			t.Errorf("data = %+v", ev.Data)
		}
		if ev.CorrelationID != "order-7" || placed.CorrelationID != "order-7" {
			t.Errorf("correlation ids %q, %q; want order-7", placed.CorrelationID, ev.CorrelationID)
		}
		if ev.CausationID != placed.ID {
			t.Errorf("causation id %q, want the order_placed id %q", ev.CausationID, placed.ID)
		}
		if ev.Type != "payment_done.v1" || ev.Source != "/apptest/payment" || ev.Attempt != 1 || ev.Subscription != "orders.track" {
			t.Errorf("envelope %+v", ev.Envelope)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("payment_done never arrived")
	}
}

func TestValidationSaysHowToFix(t *testing.T) {
	a := troupe.New(troupe.Config{Name: "bad app", HTTPAddr: "off", Logger: quietLogger()})
	s := a.Service("payment")
	a.Service("payment")
	h := func(context.Context, troupe.Event[orderPlaced]) error { return nil }
	troupe.Subscribe(s, testOrderPlaced, "charge", h)
	troupe.Subscribe(s, testOrderPlaced, "charge", h)
	troupe.Subscribe(s, troupe.NewTopic[chan int]("weird", 1), "w", func(context.Context, troupe.Event[chan int]) error { return nil })
	troupe.Subscribe(s, testOrderPlaced, "refund", h, troupe.Emits(testPaymentDone))
	err := a.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`app name "bad app"`,
		`service "payment" is declared twice`,
		`two subscriptions named "charge"`,
		`listens to topic "order_placed", which no service publishes: add .Publishes(OrderPlaced)`,
		`cannot be encoded as JSON`,
		`subscription payment.refund emits topic "payment_done", which its service payment does not publish: add .Publishes(PaymentDone) to service payment`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestPublishErrors(t *testing.T) {
	a := newApp(t)
	a.Service("orders").Publishes(testOrderPlaced)
	startApp(t, a)
	ctx := a.Context(context.Background())

	if err := troupe.Publish(context.Background(), testOrderPlaced, orderPlaced{}); !errors.Is(err, troupe.ErrNoApp) {
		t.Errorf("no app: %v", err)
	}
	if err := troupe.Publish(ctx, testPaymentDone, paymentDone{}); !errors.Is(err, troupe.ErrUndeclaredTopic) {
		t.Errorf("undeclared: %v", err)
	}
	type blob struct{ B string }
	big := troupe.NewTopic[blob]("blob", 1)
	a2 := newApp(t)
	a2.Service("s").Publishes(big)
	startApp(t, a2)
	if err := troupe.Publish(a2.Context(context.Background()), big, blob{B: strings.Repeat("x", 2<<20)}); !errors.Is(err, troupe.ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	type num struct{ F float64 }
	nan := troupe.NewTopic[num]("num", 1)
	a3 := newApp(t)
	a3.Service("s").Publishes(nan)
	startApp(t, a3)
	var zero float64
	if err := troupe.Publish(a3.Context(context.Background()), nan, num{F: zero / zero}); !errors.Is(err, troupe.ErrEncode) {
		t.Errorf("NaN: %v", err)
	}
	_ = fmt.Sprint
}

// A logger taken from the app before App.Main's log flags took effect still
// writes the way the flags say.
func TestLoggerTakenEarlyFollowsTheFlags(t *testing.T) {
	app := troupe.New(troupe.Config{Name: "early", DataDir: t.TempDir()})
	app.Service("idle")
	early := app.Logger().With("component", "early")
	ready := make(chan struct{})
	app.OnReady(func(context.Context) error { close(ready); return nil })
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunCommand(ctx, []string{"--log-format", "json", "--http", "off"}, &stderr) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("RunCommand: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the app did not start")
	}
	early.Info("hello from a component")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out := stderr.String(); !strings.Contains(out, `"msg":"hello from a component","component":"early"`) {
		t.Errorf("the early logger did not write JSON through the app's logger:\n%s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
