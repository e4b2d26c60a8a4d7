package troupe_test

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/rabbitmq"
	"github.com/troupe-go/troupe/troupetest"
)

// An event whose last attempt dies with its process (kill -9) is not
// handled again: the next process compensates it with OnFailure. Without
// this the order's money would never be refunded.
func TestAbandonedLastAttemptIsCompensated(t *testing.T) {
	for _, broker := range []string{"embedded", "rabbitmq"} {
		t.Run(broker, func(t *testing.T) {
			cfg := troupe.Config{Name: uniqueName("abandon"), DataDir: t.TempDir()}
			track := func(*troupe.App) {}
			var queues []string // declared on RabbitMQ, deleted at the end
			if broker == "rabbitmq" {
				conn, err := amqp.Dial(testAMQPURL)
				if err != nil {
					if os.Getenv("CI") != "" {
						t.Fatalf("RabbitMQ: %v (CI needs it)", err)
					}
					t.Skipf("no RabbitMQ (%v)", err)
				}
				t.Cleanup(func() {
					defer conn.Close()
					ch, err := conn.Channel()
					if err != nil {
						return
					}
					defer ch.Close()
					for _, q := range queues {
						_, _ = ch.QueueDelete(q, false, false, false)
					}
					_ = ch.ExchangeDelete("troupe."+cfg.Name, false, false)
				})
				cfg.Broker = testAMQPURL
				track = func(app *troupe.App) {
					app.OnStop(func(context.Context) error {
						if tr, ok := app.Transport().(*rabbitmq.Transport); ok {
							queues = append(queues, tr.Queues()...)
						}
						return nil
					})
				}
			}
			started := make(chan struct{}, 1)
			var calls atomic.Int32
			declare := func(block bool) (*troupe.App, *troupetest.Observer[confirmFailed]) {
				app := troupe.New(troupetest.Config(t, cfg))
				track(app)
				app.Service("orders").Publishes(testOrderPlaced)
				restaurant := app.Service("restaurant").Publishes(testConfirmFailed)
				troupe.Subscribe(restaurant, testOrderPlaced, "confirm", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
					if block {
						started <- struct{}{}
						<-ctx.Done() // dies here
						return ctx.Err()
					}
					calls.Add(1)
					return nil
				}, troupe.MaxAttempts(1), troupe.Lease(time.Second),
					troupe.OnFailure(testConfirmFailed, func(ev troupe.Event[orderPlaced], cause error) confirmFailed {
						return confirmFailed{OrderID: ev.Data.OrderID, Reason: cause.Error(), Attempt: ev.Attempt}
					}))
				return app, troupetest.Observe(t, app, testConfirmFailed)
			}

			first, _ := declare(true)
			if err := first.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := troupe.Publish(troupe.WithCorrelationID(first.Context(context.Background()), "order-k"), testOrderPlaced, orderPlaced{OrderID: "k"}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-started:
			case <-time.After(troupetest.DefaultTimeout):
				t.Fatal("the first attempt never started")
			}
			if tr, ok := first.Transport().(*rabbitmq.Transport); ok {
				queues = append(queues, tr.Queues()...)
			}
			first.Transport().(interface{ Kill() }).Kill() // as kill -9 would

			second, failed := declare(false)
			troupetest.Start(t, second)
			ev := failed.WaitCorrelation(t, "order-k")
			if ev.Data.OrderID != "k" || !strings.Contains(ev.Data.Reason, "died during the last attempt") {
				t.Errorf("compensation %+v, want order k abandoned", ev.Data)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("the handler ran %d times after its last attempt was abandoned, want 0", n)
			}
			dls, err := second.DeadLetters(context.Background(), "restaurant.confirm", 0)
			if err != nil || len(dls) != 0 {
				t.Errorf("dead letters %d (%v), want none: the abandoned event was compensated", len(dls), err)
			}
		})
	}
}
