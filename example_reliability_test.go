package troupe_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

type OrderConfirmationFailed struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

type OrderPlacedEvent struct {
	OrderID string `json:"order_id"`
}

type PaymentRefunded struct {
	OrderID string `json:"order_id"`
}

// exampleApp returns an app on a fresh embedded broker and a function that
// stops it and removes its files.
func exampleApp(name string) (*troupe.App, func()) {
	dir, _ := os.MkdirTemp("", "troupe-example")
	app := troupe.New(troupe.Config{Name: name, DataDir: dir, HTTPAddr: "off", Logger: slog.New(slog.DiscardHandler)})
	return app, func() {
		_ = app.Stop(context.Background())
		_ = os.RemoveAll(dir)
	}
}

// A restaurant that rejects an order compensates: OnFailure publishes
// order_confirmation_failed in the same business transaction, and the
// payment service refunds. The topology draws the failure path from the
// declaration.
func ExampleOnFailure() {
	orderPlaced := troupe.NewTopic[OrderPlacedEvent]("order_placed", 1)
	confirmFailed := troupe.NewTopic[OrderConfirmationFailed]("order_confirmation_failed", 1)
	refunded := troupe.NewTopic[PaymentRefunded]("payment_refunded", 1)

	app, stop := exampleApp("food")
	defer stop()
	orders := app.Service("orders").Publishes(orderPlaced)
	restaurant := app.Service("restaurant").Publishes(confirmFailed)
	payment := app.Service("payment").Publishes(refunded)

	troupe.Subscribe(restaurant, orderPlaced, "confirm",
		func(ctx context.Context, ev troupe.Event[OrderPlacedEvent]) error {
			return troupe.Permanent(errors.New("kitchen closed")) // a business refusal: no retries
		},
		troupe.OnFailure(confirmFailed, func(ev troupe.Event[OrderPlacedEvent], cause error) OrderConfirmationFailed {
			return OrderConfirmationFailed{OrderID: ev.Data.OrderID, Reason: cause.Error()}
		}))
	troupe.Subscribe(payment, confirmFailed, "refund",
		func(ctx context.Context, ev troupe.Event[OrderConfirmationFailed]) error {
			fmt.Printf("payment: refunding %s (%s)\n", ev.Data.OrderID, ev.Data.Reason)
			return troupe.Publish(ctx, refunded, PaymentRefunded{OrderID: ev.Data.OrderID})
		}, troupe.Emits(refunded))
	done := make(chan troupe.Event[PaymentRefunded])
	troupe.Subscribe(orders, refunded, "track", func(ctx context.Context, ev troupe.Event[PaymentRefunded]) error {
		done <- ev
		return nil
	})

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	_ = troupe.Publish(troupe.WithCorrelationID(app.Context(ctx), "order-1"), orderPlaced, OrderPlacedEvent{OrderID: "order-1"})
	ev := <-done
	fmt.Println("orders: refunded", ev.Data.OrderID, "in transaction", ev.CorrelationID)
	// Output:
	// payment: refunding order-1 (permanent: kitchen closed)
	// orders: refunded order-1 in transaction order-1
}

type CustomerV1 struct {
	Name string `json:"name"`
}

type CustomerV2 struct {
	First string `json:"first"`
	Last  string `json:"last"`
}

// Version 2 of a topic splits a field. Events of version 1 still in the
// broker are upcast before the handler sees them, so the handler knows one
// type.
func ExampleUpcast() {
	customers := troupe.NewTopic[CustomerV2]("customer_created", 2)
	troupe.Upcast(customers, 1, func(old CustomerV1) (CustomerV2, error) {
		first, last, _ := strings.Cut(old.Name, " ")
		return CustomerV2{First: first, Last: last}, nil
	})
	fmt.Println("reads versions", customers.Versions())

	app, stop := exampleApp("crm")
	defer stop()
	app.Service("crm").Publishes(customers)
	got := make(chan CustomerV2)
	troupe.Subscribe(app.Service("mailer"), customers, "greet", func(ctx context.Context, ev troupe.Event[CustomerV2]) error {
		got <- ev.Data
		return nil
	})
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	// An event an older publisher left in the broker.
	_ = app.Transport().Publish(ctx, &transport.Message{
		ID: "c-1", Type: "customer_created.v1", Source: "/crm-v1", Time: time.Now(),
		Data: []byte(`{"name":"Grace Hopper"}`),
	})
	c := <-got
	fmt.Printf("first %q, last %q\n", c.First, c.Last)
	// Output:
	// reads versions [1 2]
	// first "Grace", last "Hopper"
}

type SignupRequested struct {
	Email string `json:"email"`
}

type SignupAccepted struct {
	UserID string `json:"user_id"`
}

type SignupRejected struct {
	Reason string `json:"reason"`
}

// An HTTP edge can wait for the outcome of a choreography and answer with
// it. Request publishes the event and returns the first event of the same
// business transaction on one of the outcome topics.
func ExampleRequest() {
	requested := troupe.NewTopic[SignupRequested]("signup_requested", 1)
	accepted := troupe.NewTopic[SignupAccepted]("signup_accepted", 1)
	rejected := troupe.NewTopic[SignupRejected]("signup_rejected", 1)

	app, stop := exampleApp("signup")
	defer stop()
	app.Service("api").Publishes(requested)
	users := app.Service("users").Publishes(accepted, rejected)
	troupe.Subscribe(users, requested, "register", func(ctx context.Context, ev troupe.Event[SignupRequested]) error {
		if !strings.Contains(ev.Data.Email, "@") {
			return troupe.Publish(ctx, rejected, SignupRejected{Reason: "not an email address"})
		}
		return troupe.Publish(ctx, accepted, SignupAccepted{UserID: "u-1"})
	}, troupe.Emits(accepted, rejected))

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, email := range []string{"ada@example.com", "ada"} {
		rctx, cancel := context.WithTimeout(app.Context(ctx), 5*time.Second)
		reply, err := troupe.Request(rctx, requested, SignupRequested{Email: email}, accepted, rejected)
		cancel()
		switch {
		case err != nil:
			fmt.Println(err)
		case reply.Is(accepted):
			u, _ := troupe.ReplyAs(reply, accepted)
			fmt.Println(email, "→ 201 user", u.UserID)
		default:
			r, _ := troupe.ReplyAs(reply, rejected)
			fmt.Println(email, "→ 422", r.Reason)
		}
	}
	// Output:
	// ada@example.com → 201 user u-1
	// ada → 422 not an email address
}

// A payment provider that is down opens the subscription's circuit breaker
// after three failures: events wait in the process instead of burning their
// attempts, and a probe after the cooldown closes it again.
func ExampleCircuitBreaker() {
	orderPlaced := troupe.NewTopic[OrderPlacedEvent]("order_placed", 1)
	app, stop := exampleApp("breaker")
	defer stop()
	app.Service("orders").Publishes(orderPlaced)
	var calls int
	charged := make(chan string)
	troupe.Subscribe(app.Service("payment"), orderPlaced, "charge",
		func(ctx context.Context, ev troupe.Event[OrderPlacedEvent]) error {
			calls++ // Concurrency(1): one call at a time
			if calls <= 3 {
				return errors.New("provider unavailable")
			}
			charged <- ev.Data.OrderID
			return nil
		},
		troupe.CircuitBreaker(3, 100*time.Millisecond), troupe.Concurrency(1),
		troupe.Backoff(10*time.Millisecond, 10*time.Millisecond))
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	_ = troupe.Publish(app.Context(ctx), orderPlaced, OrderPlacedEvent{OrderID: "order-1"})
	fmt.Println("charged", <-charged, "after", calls, "calls")
	// Output:
	// charged order-1 after 4 calls
}

type AccountEntry struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
}

// Entries of one account must be applied in the order they were posted;
// entries of different accounts need not wait for each other.
func ExampleOrderBy() {
	entries := troupe.NewTopic[AccountEntry]("entry_posted", 1)
	troupe.OrderBy(entries, func(e AccountEntry) string { return e.Account })

	app, stop := exampleApp("ledger")
	defer stop()
	app.Service("bank").Publishes(entries)
	balances := map[string][]int{}
	done := make(chan struct{})
	n := 0
	troupe.Subscribe(app.Service("ledger"), entries, "apply", func(ctx context.Context, ev troupe.Event[AccountEntry]) error {
		// Calls for one account never overlap; this map is shared by
		// accounts, so lock it when Concurrency > 1.
		balances[ev.OrderingKey] = append(balances[ev.OrderingKey], ev.Data.Amount)
		if n++; n == 4 {
			close(done)
		}
		return nil
	}, troupe.Concurrency(1))
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	_ = troupe.PublishBatch(app.Context(ctx), entries, []AccountEntry{
		{"alice", 100}, {"bob", 5}, {"alice", -30}, {"alice", -20},
	})
	<-done
	fmt.Println("alice", balances["alice"], "bob", balances["bob"])
	// Output:
	// alice [100 -30 -20] bob [5]
}
