package journal_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
	"github.com/troupe-go/troupe/troupetest"
)

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

type paymentSucceeded struct {
	OrderID string `json:"order_id"`
}

var (
	topicOrderPlaced = troupe.NewTopic[orderPlaced]("order_placed", 1)
	topicPaid        = troupe.NewTopic[paymentSucceeded]("payment_succeeded", 1)
)

// broker is one broker the journal tests run on.
type broker struct {
	name string
	url  string // "" for the embedded broker
	// reach connects to the broker and registers the removal of what an
	// app named ns left there; it fails when the broker is absent.
	reach func(t *testing.T, ns string) error
}

var brokers = []broker{
	{name: "embedded", reach: func(*testing.T, string) error { return nil }},
	{name: "nats", url: "nats://127.0.0.1:4222", reach: func(t *testing.T, ns string) error {
		nc, err := nats.Connect("nats://127.0.0.1:4222")
		if err != nil {
			return err
		}
		t.Cleanup(func() {
			defer nc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = natsjs.DeleteNamespace(ctx, nc, ns)
		})
		return nil
	}},
	{name: "rabbitmq", url: "amqp://guest:guest@127.0.0.1:5672/", reach: func(t *testing.T, ns string) error {
		conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
		if err != nil {
			return err
		}
		t.Cleanup(func() {
			defer conn.Close()
			var queues []string
			for _, sub := range []string{"payment.charge", "shipping.ship", "audit.log"} {
				q := ns + "." + sub
				queues = append(queues, q, q+".dlq")
				for _, d := range rabbitmq.DefaultRetryDelays {
					queues = append(queues, q+".retry."+strconv.FormatInt(d.Milliseconds(), 10)+"ms")
				}
			}
			queues = append(queues, ns+".journal")
			for _, q := range queues {
				// A missing queue closes the channel: one channel per queue.
				if ch, err := conn.Channel(); err == nil {
					_, _ = ch.QueueDelete(q, false, false, false)
					_ = ch.Close()
				}
			}
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete("troupe."+ns, false, false)
				_ = ch.Close()
			}
		})
		return nil
	}},
}

// onBroker runs f on b with a fresh app name, skipping when an external
// broker is absent (failing under CI=true).
func onBroker(t *testing.T, b broker, f func(t *testing.T, cfg troupe.Config)) {
	t.Run(b.name, func(t *testing.T) {
		ns := uniqueName("jr")
		if err := b.reach(t, ns); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s: %v (CI needs it)", b.name, err)
			}
			t.Skipf("no %s broker (%v); start it to run this test", b.name, err)
		}
		f(t, troupetest.Config(t, troupe.Config{Name: ns, Broker: b.url}))
	})
}

func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// choreography declares a two-step flow: payment.charge fails its first
// attempt and then publishes payment_succeeded; shipping.ship refuses
// every payment for good, which dead-letters it.
func choreography(cfg troupe.Config) *troupe.App {
	app := troupe.New(cfg)
	app.Service("orders").Publishes(topicOrderPlaced)
	payment := app.Service("payment").Publishes(topicPaid)
	troupe.Subscribe(payment, topicOrderPlaced, "charge", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		if ev.Attempt == 1 {
			return errors.New("card network timed out")
		}
		return troupe.Publish(ctx, topicPaid, paymentSucceeded(ev.Data))
	}, troupe.Emits(topicPaid), troupe.MaxAttempts(3), troupe.Backoff(10*time.Millisecond, 10*time.Millisecond))
	troupe.Subscribe(app.Service("shipping"), topicPaid, "ship", func(ctx context.Context, ev troupe.Event[paymentSucceeded]) error {
		return troupe.Permanent(errors.New("no address for order " + ev.Data.OrderID))
	})
	return app
}

// traceOf polls the journal until the transaction has want entries, as
// entries are written asynchronously.
func traceOf(t *testing.T, app *troupe.App, correlation string, want int) []journal.Entry {
	t.Helper()
	deadline := time.Now().Add(troupetest.DefaultTimeout)
	for {
		entries, err := journal.Trace(context.Background(), app, correlation)
		if err != nil && !errors.Is(err, journal.ErrNotFound) {
			t.Fatalf("Trace: %v", err)
		}
		if len(entries) >= want {
			return entries
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the trace of %s has %d entries, want %d: %v", troupetest.DefaultTimeout, correlation, len(entries), want, entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
