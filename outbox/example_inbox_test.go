package outbox_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
)

// An idempotent consumer: billing issues an invoice for each order in a
// transaction that also records the order event as handled and holds the
// invoice event, so a redelivered order event changes nothing.
func ExampleSubscribe() {
	db, app, cleanup := exampleEnv("billing")
	defer cleanup()
	if _, err := db.Exec("CREATE TABLE invoices (number integer PRIMARY KEY, order_id text)"); err != nil {
		panic(err)
	}
	ob, err := outbox.New(db, outbox.Options{})
	if err != nil {
		panic(err)
	}

	app.Service("orders").Publishes(OrderPlaced)
	outbox.Subscribe(app.Service("billing").Publishes(InvoiceIssued), OrderPlaced, "invoice", ob,
		func(ctx context.Context, tx *sql.Tx, ev troupe.Event[OrderPlacedV1]) error {
			res, err := tx.ExecContext(ctx, "INSERT INTO invoices (order_id) VALUES (?)", ev.Data.ID)
			if err != nil {
				return err
			}
			number, err := res.LastInsertId()
			if err != nil {
				return err
			}
			return outbox.PublishTx(ctx, tx, InvoiceIssued, InvoiceIssuedV1{OrderID: ev.Data.ID, Number: int(number)})
		})
	issued := make(chan InvoiceIssuedV1, 4)
	troupe.Subscribe(app.Service("mail"), InvoiceIssued, "send",
		func(ctx context.Context, ev troupe.Event[InvoiceIssuedV1]) error {
			issued <- ev.Data
			return nil
		})
	outbox.Attach(app, ob)
	if err := app.Start(context.Background()); err != nil {
		panic(err)
	}
	defer app.Stop(context.Background())

	ctx := troupe.WithIdempotencyKey(app.Context(context.Background()), "order-7")
	if err := troupe.Publish(ctx, OrderPlaced, OrderPlacedV1{ID: "7"}); err != nil {
		panic(err)
	}
	inv := <-issued
	fmt.Printf("invoice %d for order %s\n", inv.Number, inv.OrderID)
	// The same publish again (a client's retry) has the same id, which
	// the inbox knows: a redelivery of it would be skipped.
	again := troupe.WithIdempotencyKey(app.Context(context.Background()), "order-7")
	msgs, _ := troupe.Encode(again, OrderPlaced, OrderPlacedV1{ID: "7"})
	seen, _ := ob.Seen(ctx, "billing.invoice", msgs[0].ID)
	fmt.Println("handled before:", seen)
	// Output:
	// invoice 1 for order 7
	// handled before: true
}
