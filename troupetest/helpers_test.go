package troupetest_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/troupe-go/troupe"
)

// The choreography the tests and examples use.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

type PaymentDone struct {
	OrderID string `json:"order_id"`
}

var (
	orderPlaced = troupe.NewTopic[OrderPlaced]("order_placed", 1)
	paymentDone = troupe.NewTopic[PaymentDone]("payment_done", 1)
)

// charge is payment's handler: it publishes payment_done for every order
// with a positive total and rejects the others for good.
func charge(ctx context.Context, ev troupe.Event[OrderPlaced]) error {
	if ev.Data.Total <= 0 {
		return troupe.Permanent(fmt.Errorf("order %s: total %d", ev.Data.OrderID, ev.Data.Total))
	}
	return troupe.Publish(ctx, paymentDone, PaymentDone{OrderID: ev.Data.OrderID})
}

// declareShop declares the shop: orders publishes order_placed, payment
// charges it and publishes payment_done.
func declareShop(app *troupe.App, h troupe.Handler[OrderPlaced], opts ...troupe.SubscribeOption) {
	app.Service("orders").Publishes(orderPlaced)
	payment := app.Service("payment").Publishes(paymentDone)
	troupe.Subscribe(payment, orderPlaced, "charge", h, append([]troupe.SubscribeOption{troupe.Emits(paymentDone)}, opts...)...)
}

// exampleT stands in for *testing.T in examples, which get none. Failures
// panic; Cleanup functions run at done.
type exampleT struct {
	testing.TB // nil: only the methods below are used
	mu         sync.Mutex
	cleanups   []func()
}

func newExampleT() *exampleT { return &exampleT{} }

func (t *exampleT) Helper()                           {}
func (t *exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) Errorf(format string, args ...any) { fmt.Printf("error: "+format+"\n", args...) }
func (t *exampleT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *exampleT) TempDir() string {
	d, err := os.MkdirTemp("", "troupetest-example")
	if err != nil {
		panic(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (t *exampleT) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// failT records how a helper fails a test, so tests can check that the
// helpers fail when they should, and say why.
type failT struct {
	testing.TB
	mu     sync.Mutex
	failed []string
}

func (t *failT) Helper() {}

func (t *failT) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	runtime.Goexit()
}

func (t *failT) Errorf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = append(t.failed, fmt.Sprintf(format, args...))
}

// mustFail runs f with a failT on its own goroutine (Fatalf ends it) and
// returns the failure messages; it fails t when f did not fail.
func mustFail(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	ft := &failT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ft)
	}()
	<-done
	if len(ft.failed) == 0 {
		t.Fatal("the helper did not fail the test")
	}
	return ft.failed[0]
}
