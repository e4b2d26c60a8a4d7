package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/troupetest"
)

// ledgerApp is an app whose ledger.apply subscription applies a note in
// the inbox's transaction and publishes an order through the outbox; it
// fails the first failFirst calls.
func ledgerApp(t *testing.T, b broker, d database, tr transport.Transport, failFirst int) (*troupe.App, *outbox.Outbox, *atomic.Int64) {
	var app *troupe.App
	if tr != nil {
		app = troupe.New(troupetest.Config(t, troupe.Config{Name: "ledger", Transport: tr}))
	} else {
		app = newApp(t, b, "")
	}
	ob := newOutbox(t, d, outbox.Options{})
	if _, err := ob.DB().Exec("CREATE TABLE effects (n int NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	app.Service("orders").Publishes(noteTopic)
	calls := new(atomic.Int64)
	outbox.Subscribe(app.Service("ledger").Publishes(orderPlaced), noteTopic, "apply", ob,
		func(ctx context.Context, tx *sql.Tx, ev troupe.Event[Note]) error {
			c := calls.Add(1)
			if _, err := tx.ExecContext(ctx, "INSERT INTO effects (n) VALUES ("+placeholder(ob)+")", ev.Data.N); err != nil {
				return err
			}
			if err := outbox.PublishTx(ctx, tx, orderPlaced, Order{ID: ev.ID}); err != nil {
				return err
			}
			if c <= int64(failFirst) {
				return errors.New("fails after writing: everything must roll back")
			}
			return nil
		}, troupe.Backoff(10e6, 10e6))
	outbox.Attach(app, ob)
	return app, ob, calls
}

// A second delivery of an event is acknowledged without running the
// handler; its effect and the event it published happen once. A failed
// attempt leaves nothing behind.
func TestInboxSkipsDuplicates(t *testing.T) {
	eachDB(t, func(t *testing.T, d database) {
		rec := troupetest.NewRecorder()
		app, ob, calls := ledgerApp(t, "", d, rec, 1)
		troupetest.Start(t, app)

		res := troupetest.Deliver(t, app, "ledger.apply", Note{N: 7}, troupetest.WithID("ev-7"))
		if res.Err == nil {
			t.Fatal("the first attempt was meant to fail")
		}
		if n := countRows(t, ob.DB(), "SELECT count(*) FROM effects"); n != 0 {
			t.Fatalf("a failed attempt left %d effects", n)
		}
		if seen, err := ob.Seen(t.Context(), "ledger.apply", "ev-7"); err != nil || seen {
			t.Fatalf("a failed attempt is recorded in the inbox (seen %v, err %v)", seen, err)
		}
		for range 3 {
			if res := troupetest.Deliver(t, app, "ledger.apply", Note{N: 7}, troupetest.WithID("ev-7")); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
		if c := calls.Load(); c != 2 {
			t.Errorf("handler ran %d times, want 2 (one failure, one success, two skips)", c)
		}
		if n := countRows(t, ob.DB(), "SELECT count(*) FROM effects"); n != 1 {
			t.Errorf("%d effects, want 1", n)
		}
		waitPending(t, ob, 0)
		orders := troupetest.Events(t, rec.Published(), orderPlaced)
		if len(orders) != 1 || orders[0].Data.ID != "ev-7" {
			t.Errorf("published %v, want one order for ev-7", orders)
		}
	})
}

// On RabbitMQ, which does not deduplicate, an event published twice is
// delivered twice and applied once. (The embedded NATS broker drops the
// copy itself, by id.)
func TestInboxSkipsBrokerDuplicates(t *testing.T) {
	needRabbit(t)
	eachDB(t, func(t *testing.T, d database) {
		app, ob, calls := ledgerApp(t, "rabbitmq", d, nil, 0)
		var deliveries atomic.Int64
		app.Use(troupe.Middleware{Name: "count", Handle: func(sub *troupe.Subscription, next troupe.HandleFunc) troupe.HandleFunc {
			return func(ctx context.Context, d *transport.Delivery) error {
				err := next(ctx, d)
				if sub.String() == "ledger.apply" && err == nil {
					deliveries.Add(1)
				}
				return err
			}
		}})
		seen := newCounter()
		troupe.Subscribe(app.Service("audit"), orderPlaced, "log", func(ctx context.Context, ev troupe.Event[Order]) error {
			seen.add(ev.Data.ID)
			return nil
		})
		troupetest.Start(t, app)
		msgs, err := troupe.Encode(app.Context(t.Context()), noteTopic, Note{N: 1})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := app.PublishMessages(t.Context(), msgs...); err != nil {
				t.Fatal(err)
			}
		}
		seen.waitFor(t, "the order", func(m map[string]int, _ int) bool { return m[msgs[0].ID] == 1 })
		eventually(t, "both deliveries handled", func() bool { return deliveries.Load() == 2 })
		if c := calls.Load(); c != 1 {
			t.Errorf("handler ran %d times for two deliveries, want 1", c)
		}
		if n := countRows(t, ob.DB(), "SELECT count(*) FROM effects"); n != 1 {
			t.Errorf("%d effects, want 1", n)
		}
	})
}

// Idempotent with a MemoryStore skips what it has seen and runs again
// what failed.
func TestIdempotentWithMemoryStore(t *testing.T) {
	store := outbox.NewMemoryStore(2)
	calls := 0
	h := outbox.Idempotent(store, func(ctx context.Context, ev troupe.Event[Note]) error {
		calls++
		if ev.Data.N < 0 {
			return errors.New("negative")
		}
		return nil
	})
	opts := []troupetest.Option{troupetest.As("ledger.apply")}
	for _, c := range []struct {
		id      string
		n       int
		wantErr bool
		calls   int
	}{
		{"a", 1, false, 1},
		{"a", 1, false, 1}, // skipped
		{"b", -1, true, 2}, // fails: not marked
		{"b", -1, true, 3}, // so runs again
		{"c", 1, false, 4},
		{"d", 1, false, 5}, // the limit of 2 forgets "a"
		{"a", 1, false, 6},
	} {
		res := troupetest.Handle(t, noteTopic, h, Note{N: c.n}, append(opts, troupetest.WithID(c.id))...)
		if (res.Err != nil) != c.wantErr || calls != c.calls {
			t.Fatalf("event %s: err %v, calls %d; want error %v, calls %d", c.id, res.Err, calls, c.wantErr, c.calls)
		}
	}
}
