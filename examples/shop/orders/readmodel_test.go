package orders

import (
	"testing"
	"time"
)

func ev(id, cause string, status Status, at time.Time) TimelineEvent {
	return TimelineEvent{ID: id, CausationID: cause, CorrelationID: "o1", Status: status, Time: at, Type: string(status)}
}

func TestReadModelAppliesEachEventOnce(t *testing.T) {
	rm := newReadModel()
	t0 := time.Now()
	rm.place(PlacedV1{OrderID: "o1", Customer: "ada"}, t0)
	placed := ev("e1", "", StatusPlaced, t0)
	rm.apply("o1", placed, nil, 1)
	rm.apply("o1", placed, nil, 2) // redelivered by the broker
	rm.apply("o1", placed, nil, 1) // published twice with one id
	o, ok := rm.get("o1")
	if !ok || len(o.Events) != 1 || o.Status != StatusPlaced || o.Customer != "ada" {
		t.Fatalf("after a redelivery: %+v", o)
	}
	n, byStatus, _, stats := rm.list(10)
	if n != 1 || byStatus[StatusPlaced] != 1 || len(byStatus) != 1 {
		t.Errorf("list: %d orders, by status %v", n, byStatus)
	}
	if want := (Stats{Duplicates: 2, Redeliveries: 1}); stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}
}

func TestReadModelToleratesEventsOutOfOrder(t *testing.T) {
	rm := newReadModel()
	t0 := time.Now()
	// The steps' events arrive before the order's own, and shipped before
	// reserved: the order is created from what arrives, the timeline is
	// sorted back into causal order, and the status never goes back.
	rm.apply("o1", ev("e4", "e3", StatusShipped, t0.Add(3*time.Millisecond)), nil, 1)
	rm.apply("o1", ev("e2", "e1", StatusPaid, t0.Add(time.Millisecond)), nil, 1)
	rm.apply("o1", ev("e3", "e2", StatusReserved, t0.Add(2*time.Millisecond)), nil, 1)
	if o, _ := rm.get("o1"); o.Status != StatusShipped {
		t.Errorf("status %s, want shipped", o.Status)
	}
	rm.apply("o1", ev("e1", "", StatusPlaced, t0), &PlacedV1{OrderID: "o1", Customer: "ada", Total: Money{Cents: 2400, Currency: "EUR"}}, 1)
	o, _ := rm.get("o1")
	if o.Status != StatusShipped || o.Customer != "ada" || o.Total.Cents != 2400 {
		t.Errorf("after the late order_placed: %+v", o)
	}
	var ids []string
	for _, e := range o.Events {
		ids = append(ids, e.ID)
	}
	if got := len(ids); got != 4 || ids[0] != "e1" || ids[1] != "e2" || ids[2] != "e3" || ids[3] != "e4" {
		t.Errorf("timeline %v, want [e1 e2 e3 e4]", ids)
	}
}

func TestReadModelForgetsOnlyUnseenOrders(t *testing.T) {
	rm := newReadModel()
	rm.place(PlacedV1{OrderID: "o1", Customer: "ada"}, time.Now())
	rm.forget("o1")
	if _, ok := rm.get("o1"); ok {
		t.Error("an order whose publish failed is still listed")
	}
	// The publish reported an error, yet the event got through.
	rm.place(PlacedV1{OrderID: "o2", Customer: "bob"}, time.Now())
	rm.apply("o2", ev("e1", "", StatusPlaced, time.Now()), nil, 1)
	rm.forget("o2")
	if _, ok := rm.get("o2"); !ok {
		t.Error("an order with events was forgotten")
	}
	if n, _, list, _ := rm.list(10); n != 1 || len(list) != 1 || list[0].ID != "o2" {
		t.Errorf("list = %d %+v", n, list)
	}
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
