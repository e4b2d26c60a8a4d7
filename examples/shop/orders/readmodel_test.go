package orders

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/troupetest"
)

// eachReadModel runs f with a read model on SQLite and on PostgreSQL.
// ctx carries the app, for the outbox.
func eachReadModel(t *testing.T, f func(t *testing.T, ctx context.Context, rm *readModel)) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "shop_rm_" + hex.EncodeToString(b)
	storetest.Each(t, name, func(t *testing.T, db *store.DB) {
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: name}))
		app.Service(ServiceName).Publishes(Placed)
		rm := &readModel{ob: store.Outbox(app, db, ServiceName, schema...)}
		troupetest.Start(t, app)
		f(t, app.Context(context.Background()), rm)
	})
}

func ev(id, cause string, status Status, at time.Time) TimelineEvent {
	return TimelineEvent{ID: id, CausationID: cause, CorrelationID: "o1", Status: status, Time: at, Type: string(status)}
}

func mustGet(t *testing.T, rm *readModel, id string) Order {
	t.Helper()
	o, ok, err := rm.get(context.Background(), id)
	if err != nil || !ok {
		t.Fatalf("get %s: %v, found %v", id, err, ok)
	}
	return o
}

func TestReadModelAppliesEachEventOnce(t *testing.T) {
	eachReadModel(t, func(t *testing.T, ctx context.Context, rm *readModel) {
		t0 := time.Now()
		p := PlacedV1{OrderID: "o1", Customer: "ada", Lines: []Line{{SKU: "book", Qty: 1, UnitPrice: Money{1200, "EUR"}}}, Total: Money{1200, "EUR"}}
		if _, created, err := rm.place(ctx, p, "", "fp", t0); err != nil || !created {
			t.Fatalf("place: %v %v", created, err)
		}
		placed := ev("e1", "", StatusPlaced, t0)
		for _, attempt := range []int{1, 2, 1} { // then redelivered by the broker, then published twice with one id
			if err := rm.apply(ctx, "o1", placed, nil, "", attempt); err != nil {
				t.Fatal(err)
			}
		}
		o := mustGet(t, rm, "o1")
		if len(o.Events) != 1 || o.Status != StatusPlaced || o.Customer != "ada" || o.Total.Cents != 1200 || len(o.Lines) != 1 {
			t.Fatalf("after a redelivery: %+v", o)
		}
		l, err := rm.list(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if l.Count != 1 || l.ByStatus["placed"] != 1 || l.Stuck != 1 || l.Terminal != 0 || l.PlacedCents != 1200 {
			t.Errorf("list: %+v", l)
		}
		if want := (Stats{Duplicates: 2, Redeliveries: 1}); l.Stats != want {
			t.Errorf("stats %+v, want %+v", l.Stats, want)
		}
	})
}

func TestReadModelToleratesEventsOutOfOrder(t *testing.T) {
	eachReadModel(t, func(t *testing.T, ctx context.Context, rm *readModel) {
		t0 := time.Now()
		// The steps' events arrive before the order's own, and shipped before
		// reserved: the order is made from what arrives, the timeline is
		// sorted back into causal order, and the status never goes back.
		for _, e := range []TimelineEvent{
			ev("e4", "e3", StatusShipped, t0.Add(3*time.Millisecond)),
			ev("e2", "e1", StatusPaid, t0.Add(time.Millisecond)),
			ev("e3", "e2", StatusReserved, t0.Add(2*time.Millisecond)),
		} {
			if err := rm.apply(ctx, "o1", e, nil, "", 1); err != nil {
				t.Fatal(err)
			}
		}
		if o := mustGet(t, rm, "o1"); o.Status != StatusShipped {
			t.Errorf("status %s, want shipped", o.Status)
		}
		err := rm.apply(ctx, "o1", ev("e1", "", StatusPlaced, t0), &PlacedV1{OrderID: "o1", Customer: "ada", Total: Money{Cents: 2400, Currency: "EUR"}}, "", 1)
		if err != nil {
			t.Fatal(err)
		}
		o := mustGet(t, rm, "o1")
		if o.Status != StatusShipped || o.Customer != "ada" || o.Total.Cents != 2400 || o.Terminal {
			t.Errorf("after the late order_placed: %+v", o)
		}
		var ids []string
		for _, e := range o.Events {
			ids = append(ids, e.ID)
		}
		if got := len(ids); got != 4 || ids[0] != "e1" || ids[1] != "e2" || ids[2] != "e3" || ids[3] != "e4" {
			t.Errorf("timeline %v, want [e1 e2 e3 e4]", ids)
		}
	})
}

// A failure path: the first failure gives the reason, the order ends
// cancelled and terminal, and the list counts it so.
func TestReadModelCancelledOrder(t *testing.T) {
	eachReadModel(t, func(t *testing.T, ctx context.Context, rm *readModel) {
		t0 := time.Now()
		p := PlacedV1{OrderID: "o1", Customer: "ada", Total: Money{1200, "EUR"}}
		if _, _, err := rm.place(ctx, p, "", "fp", t0); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			ev     TimelineEvent
			reason string
		}{
			{ev("e1", "", StatusPlaced, t0), ""},
			{ev("e2", "e1", StatusPaid, t0.Add(1)), ""},
			{ev("e5", "e4", StatusCancelled, t0.Add(4)), ""},
			{ev("e3", "e2", StatusReservationFailed, t0.Add(2)), "out of stock"},
			{ev("e4", "e3", StatusRefunded, t0.Add(3)), ""},
		}
		for _, s := range steps {
			if err := rm.apply(ctx, "o1", s.ev, nil, s.reason, 1); err != nil {
				t.Fatal(err)
			}
		}
		o := mustGet(t, rm, "o1")
		if o.Status != StatusCancelled || !o.Terminal || o.Reason != "out of stock" || len(o.Events) != 5 || o.Events[4].ID != "e5" {
			t.Errorf("order %+v", o)
		}
		l, err := rm.list(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if l.Terminal != 1 || l.Stuck != 0 || l.CancelledCents != 1200 || l.ShippedCents != 0 {
			t.Errorf("list %+v", l)
		}
	})
}

// An idempotency key places one order: the same order again gets its id,
// another order under the key is refused.
func TestReadModelIdempotencyKey(t *testing.T) {
	eachReadModel(t, func(t *testing.T, ctx context.Context, rm *readModel) {
		p := PlacedV1{OrderID: "o1", Customer: "ada", Total: Money{1200, "EUR"}}
		id, created, err := rm.place(ctx, p, "k1", "fp1", time.Now())
		if err != nil || !created || id != "o1" {
			t.Fatalf("first: %q %v %v", id, created, err)
		}
		p.OrderID = "o2"
		id, created, err = rm.place(ctx, p, "k1", "fp1", time.Now())
		if err != nil || created || id != "o1" {
			t.Errorf("retry: %q %v %v; want o1, not created", id, created, err)
		}
		if _, _, err = rm.place(ctx, p, "k1", "fp2", time.Now()); !errors.Is(err, errKeyReused) {
			t.Errorf("other order under the key: %v", err)
		}
		if l, _ := rm.list(ctx, 10); l.Count != 1 {
			t.Errorf("%d orders, want 1", l.Count)
		}
		if _, ok, _ := rm.get(ctx, "o2"); ok {
			t.Error("the retry stored an order")
		}
	})
}

func TestMoneyString(t *testing.T) {
	for _, tc := range []struct {
		m    Money
		want string
	}{
		{Money{2400, "EUR"}, "24.00 EUR"},
		{Money{5, "EUR"}, "0.05 EUR"},
		{Money{-150, "EUR"}, "-1.50 EUR"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%+v = %q, want %q", tc.m, got, tc.want)
		}
	}
}
