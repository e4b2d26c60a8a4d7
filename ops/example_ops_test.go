package ops_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/ops"
)

type invoice struct {
	Number string `json:"number"`
}

var invoiceIssued = troupe.NewTopic[invoice]("invoice_issued", 1)

func billing(dir string) *troupe.App {
	app := troupe.New(troupe.Config{Name: "billing", DataDir: dir, HTTPAddr: "off", Logger: slog.New(slog.DiscardHandler)})
	app.Service("invoices").Publishes(invoiceIssued)
	troupe.Subscribe(app.Service("ledger"), invoiceIssued, "book", func(ctx context.Context, ev troupe.Event[invoice]) error {
		return troupe.Permanent(errors.New("ledger closed for the year"))
	})
	return app
}

// An app binary that imports ops answers "dlq list" (and tail, trace,
// dlq show, replay, discard). Here the app runs once on the embedded
// broker and dead-letters an invoice; the command then reads the same data
// directory, as "billing dlq list --data DIR" would after the app stopped.
func ExampleDLQ() {
	dir, _ := os.MkdirTemp("", "ops-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	app := billing(dir)
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	_ = troupe.Publish(app.Context(ctx), invoiceIssued, invoice{Number: "2026-001"})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if dls, err := app.DeadLetters(ctx, "ledger.book", 0); err != nil || len(dls) == 1 {
			break
		}
	}
	_ = app.Stop(ctx)

	if err := ops.DLQ(ctx, billing(dir), []string{"list"}, os.Stdout, os.Stderr); err != nil {
		fmt.Println(err)
	}
	// Output:
	// SUBSCRIPTION  DEAD LETTERS
	// ledger.book   1
}
