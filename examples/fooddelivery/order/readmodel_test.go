package order

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/troupetest"
)

// eachModel runs f with a read model on SQLite and on PostgreSQL, each in
// a started app of its own.
func eachModel(t *testing.T, f func(t *testing.T, rm *readModel)) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "fdorder_" + hex.EncodeToString(b)
	storetest.Each(t, name, func(t *testing.T, db *store.DB) {
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: name}))
		app.Service(ServiceName)
		rm := &readModel{ob: store.Outbox(app, db, ServiceName, schema...)}
		troupetest.Start(t, app)
		f(t, rm)
	})
}

// inTx runs f in a committed transaction, as the inbox does.
func inTx(t *testing.T, rm *readModel, f func(ctx context.Context, tx *sql.Tx) error) {
	t.Helper()
	ctx := context.Background()
	db, err := rm.db()
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := f(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func apply(t *testing.T, rm *readModel, id string, ev TimelineEvent, placed *PlacedV1) {
	t.Helper()
	inTx(t, rm, func(ctx context.Context, tx *sql.Tx) error { return rm.apply(ctx, tx, id, ev, placed) })
}

func get(t *testing.T, rm *readModel, id string) Order {
	t.Helper()
	o, ok, err := rm.get(context.Background(), id)
	if err != nil || !ok {
		t.Fatalf("get %s: %v, found %v", id, err, ok)
	}
	return o
}

func list(t *testing.T, rm *readModel, status Status, limit int) (Totals, []Summary) {
	t.Helper()
	tot, l, err := rm.list(context.Background(), status, limit)
	if err != nil {
		t.Fatal(err)
	}
	return tot, l
}

func tev(id, cause, typ string, status Status, at time.Time) TimelineEvent {
	return TimelineEvent{ID: id, CausationID: cause, CorrelationID: "o1", Type: typ, Status: status, Time: at, Attempt: 1, Service: "s", Summary: typ}
}

func TestReadModelSortsEventsThatArriveOutOfOrder(t *testing.T) {
	eachModel(t, func(t *testing.T, rm *readModel) {
		t0 := time.Now()
		// The subscriptions run concurrently: the courier can be heard of
		// before the payment, and the order's own event last.
		apply(t, rm, "o1", tev("e4", "e3", "assigned", StatusAssigned, t0.Add(3*time.Millisecond)), nil)
		apply(t, rm, "o1", tev("e2", "e1", "paid", StatusPaid, t0.Add(time.Millisecond)), nil)
		if o := get(t, rm, "o1"); o.Status != StatusAssigned || !o.Terminal {
			t.Fatalf("status %s terminal %v, want assigned and terminal at once", o.Status, o.Terminal)
		}
		apply(t, rm, "o1", tev("e3", "e2", "confirmed", StatusConfirmed, t0.Add(2*time.Millisecond)), nil)
		apply(t, rm, "o1", tev("e1", "", "placed", StatusPlaced, t0), &PlacedV1{OrderID: "o1", Customer: "ada", TotalCents: 1900, Items: []Item{{Name: "x", Qty: 2, PriceCents: 950}}})
		o := get(t, rm, "o1")
		var ids []string
		for _, e := range o.Timeline {
			ids = append(ids, e.ID)
		}
		if len(ids) != 4 || ids[0] != "e1" || ids[1] != "e2" || ids[2] != "e3" || ids[3] != "e4" {
			t.Errorf("timeline %v, want [e1 e2 e3 e4]", ids)
		}
		if o.Status != StatusAssigned || o.Customer != "ada" || o.TotalCents != 1900 || o.Conflict || len(o.Items) != 1 || !o.PlacedAt.Equal(t0) {
			t.Errorf("order %+v", o)
		}
		if !o.Timeline[0].Time.Equal(t0) {
			t.Errorf("time %s, want %s: stored to the nanosecond", o.Timeline[0].Time, t0)
		}
	})
}

func TestReadModelKeepsOneEventPerType(t *testing.T) {
	eachModel(t, func(t *testing.T, rm *readModel) {
		t0 := time.Now()
		inTx(t, rm, func(ctx context.Context, tx *sql.Tx) error {
			return rm.place(ctx, tx, PlacedV1{OrderID: "o1", Customer: "ada"}, t0)
		})
		apply(t, rm, "o1", tev("e1", "", "placed", StatusPlaced, t0), nil)
		apply(t, rm, "o1", tev("e9", "", "placed", StatusPlaced, t0), nil) // the same order under another event id
		o := get(t, rm, "o1")
		tot, l := list(t, rm, "", 10)
		if len(o.Timeline) != 1 || o.Timeline[0].ID != "e1" || tot.Duplicates != 1 || tot.Count != 1 || len(l) != 1 {
			t.Errorf("timeline %+v, totals %+v", o.Timeline, tot)
		}
	})
}

func TestReadModelFlagsBothOutcomes(t *testing.T) {
	eachModel(t, func(t *testing.T, rm *readModel) {
		t0 := time.Now()
		apply(t, rm, "o1", tev("e3", "e2", "confirmed", StatusConfirmed, t0), nil)
		apply(t, rm, "o1", tev("e4", "e2", "failed", StatusCancelled, t0), nil)
		apply(t, rm, "o2", tev("e5", "", "refunded", StatusRefunded, t0), nil)
		apply(t, rm, "o2", tev("e6", "", "confirmed", StatusConfirmed, t0), nil)
		tot, _ := list(t, rm, "", 10)
		if o := get(t, rm, "o1"); !o.Conflict || o.Terminal {
			t.Errorf("order %+v: want the conflict flagged and the order not terminal", o)
		}
		if o := get(t, rm, "o2"); !o.Conflict || o.Status != StatusRefunded {
			t.Errorf("order %+v: want the conflict flagged, status refunded", o)
		}
		if tot.Conflicts != 2 || tot.Stuck != 1 || tot.Terminal != 1 {
			t.Errorf("totals %+v", tot)
		}
	})
}

func TestReadModelListsByStatusNewestFirst(t *testing.T) {
	eachModel(t, func(t *testing.T, rm *readModel) {
		t0 := time.Now()
		for i, id := range []string{"a", "b", "c"} {
			inTx(t, rm, func(ctx context.Context, tx *sql.Tx) error {
				return rm.place(ctx, tx, PlacedV1{OrderID: id, Customer: "ada", TotalCents: int64(100 * (i + 1))}, t0)
			})
		}
		apply(t, rm, "b", tev("e1", "", "reversed", StatusRefunded, t0), nil)
		tot, l := list(t, rm, "", 2)
		if len(l) != 2 || l[0].ID != "c" || l[1].ID != "b" || tot.Count != 3 || tot.Terminal != 1 || tot.CancelledCents != 200 || tot.PlacedCents != 600 {
			t.Errorf("list %+v, totals %+v", l, tot)
		}
		if _, l := list(t, rm, StatusRefunded, 10); len(l) != 1 || l[0].ID != "b" {
			t.Errorf("refunded: %+v, want b", l)
		}
		if _, ok, err := rm.get(context.Background(), "nope"); ok || err != nil {
			t.Errorf("get nope: %v, %v", ok, err)
		}
	})
}

func TestIdempotencyKeysAreStored(t *testing.T) {
	eachModel(t, func(t *testing.T, rm *readModel) {
		claim := func(fp string) (bool, error) {
			var fresh bool
			var err error
			inTx(t, rm, func(ctx context.Context, tx *sql.Tx) error {
				fresh, err = rm.claimKey(ctx, tx, "ada", "k1", "o1", fp)
				return nil
			})
			return fresh, err
		}
		if fresh, err := claim("fp1"); !fresh || err != nil {
			t.Errorf("first claim: %v, %v", fresh, err)
		}
		if fresh, err := claim("fp1"); fresh || err != nil {
			t.Errorf("same order again: %v, %v; want a replay", fresh, err)
		}
		if _, err := claim("fp2"); !errors.Is(err, errKeyReused) {
			t.Errorf("another order: %v, want errKeyReused", err)
		}
	})
}
