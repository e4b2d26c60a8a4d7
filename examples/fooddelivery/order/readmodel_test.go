package order

import (
	"testing"
	"time"
)

func tev(id, cause, typ string, status Status, at time.Time) TimelineEvent {
	return TimelineEvent{ID: id, CausationID: cause, CorrelationID: "o1", Type: typ, Status: status, Time: at, Attempt: 1}
}

func TestReadModelSortsEventsThatArriveOutOfOrder(t *testing.T) {
	rm := newReadModel()
	t0 := time.Now()
	// The subscriptions run concurrently: the courier can be heard of
	// before the payment, and the order's own event last.
	rm.apply("o1", tev("e4", "e3", "assigned", StatusAssigned, t0.Add(3*time.Millisecond)), nil, 1)
	rm.apply("o1", tev("e2", "e1", "paid", StatusPaid, t0.Add(time.Millisecond)), nil, 1)
	if o, _ := rm.get("o1"); o.Status != StatusAssigned || !o.Terminal {
		t.Fatalf("status %s terminal %v, want assigned and terminal at once", o.Status, o.Terminal)
	}
	rm.apply("o1", tev("e3", "e2", "confirmed", StatusConfirmed, t0.Add(2*time.Millisecond)), nil, 1)
	rm.apply("o1", tev("e1", "", "placed", StatusPlaced, t0), &PlacedV1{OrderID: "o1", Customer: "ada", TotalCents: 1900}, 1)
	o, _ := rm.get("o1")
	var ids []string
	for _, e := range o.Timeline {
		ids = append(ids, e.ID)
	}
	if len(ids) != 4 || ids[0] != "e1" || ids[1] != "e2" || ids[2] != "e3" || ids[3] != "e4" {
		t.Errorf("timeline %v, want [e1 e2 e3 e4]", ids)
	}
	if o.Status != StatusAssigned || o.Customer != "ada" || o.TotalCents != 1900 || o.Conflict {
		t.Errorf("order %+v", o)
	}
}

func TestReadModelKeepsOneEventPerType(t *testing.T) {
	rm := newReadModel()
	t0 := time.Now()
	rm.place(PlacedV1{OrderID: "o1", Customer: "ada"}, t0)
	rm.apply("o1", tev("e1", "", "placed", StatusPlaced, t0), nil, 1)
	rm.apply("o1", tev("e1", "", "placed", StatusPlaced, t0), nil, 2) // redelivered
	rm.apply("o1", tev("e9", "", "placed", StatusPlaced, t0), nil, 1) // the same order under another event id
	o, _ := rm.get("o1")
	tot, list := rm.list("", 10)
	if len(o.Timeline) != 1 || tot.Duplicates != 2 || tot.Redeliveries != 1 || tot.Count != 1 || len(list) != 1 {
		t.Errorf("timeline %d events, totals %+v", len(o.Timeline), tot)
	}
}

func TestReadModelFlagsBothOutcomes(t *testing.T) {
	rm := newReadModel()
	t0 := time.Now()
	rm.apply("o1", tev("e3", "e2", "confirmed", StatusConfirmed, t0), nil, 1)
	rm.apply("o1", tev("e4", "e2", "failed", StatusCancelled, t0), nil, 1)
	o, _ := rm.get("o1")
	tot, _ := rm.list("", 10)
	if !o.Conflict || tot.Conflicts != 1 || tot.Stuck != 1 {
		t.Errorf("order %+v, totals %+v: want the conflict flagged and the order not terminal", o, tot)
	}
}

func TestReadModelListsByStatusNewestFirst(t *testing.T) {
	rm := newReadModel()
	t0 := time.Now()
	for i, id := range []string{"a", "b", "c"} {
		rm.place(PlacedV1{OrderID: id, TotalCents: int64(100 * (i + 1))}, t0)
	}
	rm.apply("b", tev("e1", "", "reversed", StatusRefunded, t0), nil, 1)
	tot, list := rm.list("", 2)
	if len(list) != 2 || list[0].ID != "c" || list[1].ID != "b" || tot.Count != 3 || tot.Terminal != 1 || tot.CancelledCents != 200 || tot.PlacedCents != 600 {
		t.Errorf("list %+v, totals %+v", list, tot)
	}
	if _, list := rm.list(StatusRefunded, 10); len(list) != 1 || list[0].ID != "b" {
		t.Errorf("refunded: %+v, want b", list)
	}
	rm.forget("a")
	rm.forget("b") // has an event: kept
	if rm.has("a") || !rm.has("b") {
		t.Error("forget dropped the wrong orders")
	}
}
