package outbox_test

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
)

// A service whose database is chosen on the command line: the outbox is
// declared with the service, and opened when the app starts, once --data
// and the program's own --db are known, in the processes that run the
// service.
func ExampleDeclare() {
	dir, err := os.MkdirTemp("", "outbox-declare")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	app := troupe.New(troupe.Config{Name: "billing", Logger: slog.New(slog.DiscardHandler)})
	var dbFile string
	app.Flags(func(fs *flag.FlagSet) {
		fs.StringVar(&dbFile, "db", "billing.db", "the billing service's SQLite `file`, in the data directory")
	})
	ob := outbox.Declare(app, outbox.Options{Prefix: "billing"}, func(ctx context.Context) (*sql.DB, error) {
		if !app.Runs("billing") {
			return nil, nil // another process keeps the books
		}
		db, err := outbox.OpenSQLite(filepath.Join(app.DataDir(), dbFile))
		if err != nil {
			return nil, err
		}
		_, err = db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS invoices (order_id text PRIMARY KEY)")
		return db, err
	})

	app.Service("orders").Publishes(OrderPlaced)
	outbox.Subscribe(app.Service("billing").Publishes(InvoiceIssued), OrderPlaced, "invoice", ob,
		func(ctx context.Context, tx *sql.Tx, ev troupe.Event[OrderPlacedV1]) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO invoices (order_id) VALUES (?)", ev.Data.ID); err != nil {
				return err
			}
			return outbox.PublishTx(ctx, tx, InvoiceIssued, InvoiceIssuedV1{OrderID: ev.Data.ID, Number: 1})
		}, troupe.Emits(InvoiceIssued))
	issued := make(chan InvoiceIssuedV1, 1)
	troupe.Subscribe(app.Service("mail"), InvoiceIssued, "send",
		func(ctx context.Context, ev troupe.Event[InvoiceIssuedV1]) error {
			issued <- ev.Data
			return nil
		})

	ctx, stop := context.WithCancel(context.Background())
	ready := make(chan struct{})
	app.OnReady(func(context.Context) error { close(ready); return nil })
	done := make(chan error, 1)
	go func() {
		done <- app.RunCommand(ctx, []string{"--data", dir, "--db", "books.db", "--http", "off"}, io.Discard)
	}()
	<-ready
	if err := troupe.Publish(app.Context(ctx), OrderPlaced, OrderPlacedV1{ID: "7"}); err != nil {
		panic(err)
	}
	fmt.Println("invoice for order", (<-issued).OrderID)
	_, err = os.Stat(filepath.Join(dir, "books.db"))
	fmt.Println("books.db in --data:", err == nil)
	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// invoice for order 7
	// books.db in --data: true
	// stopped: <nil>
}
