package troupe_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

// An operator tool connects with StartClient: it sees and replays dead
// letters, consumes nothing and serves no HTTP; the replayed event is
// handled by the next real run.
func TestStartClientRunsNothing(t *testing.T) {
	dir := t.TempDir()
	handled := make(chan string, 8)
	declare := func(fail bool) *troupe.App {
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: "client", DataDir: dir, HTTPAddr: "127.0.0.1:0"}))
		orders := app.Service("orders").Publishes(testOrderPlaced)
		orders.HandleFunc("GET /orders", func(w http.ResponseWriter, _ *http.Request) {})
		troupe.Subscribe(app.Service("payment"), testOrderPlaced, "charge", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
			if fail {
				return troupe.Permanent(errors.New("card declined"))
			}
			handled <- ev.Data.OrderID
			return nil
		})
		return app
	}
	ctx := context.Background()

	first := declare(true)
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := troupe.Publish(first.Context(ctx), testOrderPlaced, orderPlaced{OrderID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	troupetest.DeadLetters(t, first, "payment.charge", 2)
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	client := declare(false)
	if err := client.StartClient(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	if addr := client.HTTPAddr(); addr != "" {
		t.Errorf("client serves HTTP on %s", addr)
	}
	dls, err := client.DeadLetters(ctx, "payment.charge", 0)
	if err != nil || len(dls) != 2 {
		t.Fatalf("client sees %d dead letters (%v), want 2", len(dls), err)
	}
	if err := client.Replay(ctx, "payment.charge", dls[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := client.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-handled:
		t.Fatalf("the client handled %s", id)
	default:
	}

	next := declare(false)
	troupetest.Start(t, next)
	select {
	case id := <-handled:
		if id != dls[0].Message.ID && id != "0" && id != "1" {
			t.Errorf("handled %q", id)
		}
	case <-time.After(troupetest.DefaultTimeout):
		t.Fatal("the replayed event was not handled by the next run")
	}
}
