package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
)

// The events of the examples.
type OrderPlacedV1 struct {
	ID string `json:"id"`
}

type InvoiceIssuedV1 struct {
	OrderID string `json:"order_id"`
	Number  int    `json:"number"`
}

var (
	OrderPlaced   = troupe.NewTopic[OrderPlacedV1]("order_placed", 1)
	InvoiceIssued = troupe.NewTopic[InvoiceIssuedV1]("invoice_issued", 1)
)

// exampleEnv is a SQLite database and an embedded broker directory in a
// temporary directory.
func exampleEnv(name string) (db *sql.DB, app *troupe.App, cleanup func()) {
	dir, err := os.MkdirTemp("", "outbox-example")
	if err != nil {
		panic(err)
	}
	db, err = outbox.OpenSQLite(filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	app = troupe.New(troupe.Config{Name: name, DataDir: filepath.Join(dir, "broker"), HTTPAddr: "off",
		Logger: slog.New(slog.DiscardHandler)})
	return db, app, func() { db.Close(); os.RemoveAll(dir) }
}

// An order and the event that announces it commit together: the relay
// publishes the event once the transaction commits, and never if it rolls
// back.
func Example() {
	db, app, cleanup := exampleEnv("shop")
	defer cleanup()
	if _, err := db.Exec("CREATE TABLE orders (id text PRIMARY KEY)"); err != nil {
		panic(err)
	}
	ob, err := outbox.New(db, outbox.Options{}) // creates troupe_outbox, troupe_inbox, troupe_periods
	if err != nil {
		panic(err)
	}

	app.Service("orders").Publishes(OrderPlaced)
	confirmed := make(chan string, 4)
	troupe.Subscribe(app.Service("mail"), OrderPlaced, "confirm",
		func(ctx context.Context, ev troupe.Event[OrderPlacedV1]) error {
			confirmed <- ev.Data.ID
			return nil
		})
	outbox.Attach(app, ob) // the relay runs with the app
	if err := app.Start(context.Background()); err != nil {
		panic(err)
	}
	defer app.Stop(context.Background())

	ctx := app.Context(context.Background())
	place := func(id string, commit bool) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			panic(err)
		}
		if _, err := tx.Exec("INSERT INTO orders (id) VALUES (?)", id); err != nil {
			panic(err)
		}
		if err := outbox.PublishTx(ctx, tx, OrderPlaced, OrderPlacedV1{ID: id}); err != nil {
			panic(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			panic(err)
		}
	}
	place("6", false) // rolled back: no order, no event
	place("7", true)
	fmt.Println("mail confirms order", <-confirmed)
	// Output:
	// mail confirms order 7
}
