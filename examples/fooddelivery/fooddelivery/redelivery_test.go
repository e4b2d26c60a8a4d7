package fooddelivery_test

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/troupetest"
)

// recorderApp is the app on a Recorder: each Deliver is one handler call,
// and the ledger is read over HTTP as in production.
func recorderApp(t *testing.T, opts fooddelivery.Options) (*troupe.App, string) {
	t.Helper()
	app := fooddelivery.NewApp(troupetest.Config(t, troupe.Config{Transport: troupetest.NewRecorder(), HTTPAddr: "127.0.0.1:0"}), opts)
	troupetest.Start(t, app)
	t.Cleanup(client.CloseIdleConnections)
	return app, "http://" + app.HTTPAddr()
}

var placedEvent = order.PlacedV1{
	OrderID: "o-1", Customer: "ada", Restaurant: "napoli", TotalCents: orderTotal,
	Items: []order.Item{{Name: "margherita", Qty: 2, PriceCents: 950}, {Name: "tiramisu", Qty: 1, PriceCents: 600}},
}

func TestRedeliveredOrderIsChargedOnce(t *testing.T) {
	app, base := recorderApp(t, fooddelivery.Options{})
	first := troupetest.Deliver(t, app, "payment.charge", placedEvent,
		troupetest.WithID("ev-placed-1"), troupetest.WithCorrelationID("o-1"))
	// The broker redelivers the same event: its ack was lost.
	again := troupetest.Deliver(t, app, "payment.charge", placedEvent,
		troupetest.WithID("ev-placed-1"), troupetest.WithCorrelationID("o-1"), troupetest.WithAttempt(2))
	for _, r := range []troupetest.Result{first, again} {
		if r.Err != nil || r.Outcome != troupetest.Ack {
			t.Fatalf("attempt %d: %v (%s)", r.Event.Attempt, r.Err, r.Outcome)
		}
	}
	p1 := troupetest.Events(t, first.Published, payment.Success)
	p2 := troupetest.Events(t, again.Published, payment.Success)
	if len(p1) != 1 || len(p2) != 1 {
		t.Fatalf("published %d and %d payment_success events, want one each", len(p1), len(p2))
	}
	// The redelivery publishes the outcome again (the first attempt might
	// have failed before publishing) with the same id, and the same charge.
	if p1[0].ID != p2[0].ID || p1[0].Data.ChargeID != p2[0].Data.ChargeID || p1[0].Data.AmountCents != orderTotal {
		t.Errorf("first %+v / %s, redelivery %+v / %s: want one event id and one charge", p1[0].Data, p1[0].ID, p2[0].Data, p2[0].ID)
	}

	// The same order under another event id (a client that bypassed the
	// Idempotency-Key): ignored, nothing published.
	other := troupetest.Deliver(t, app, "payment.charge", placedEvent,
		troupetest.WithID("ev-placed-2"), troupetest.WithCorrelationID("o-1"))
	if other.Err != nil || len(other.Published) != 0 {
		t.Errorf("another event for a charged order: err %v, published %d events; want it ignored", other.Err, len(other.Published))
	}

	b := books(t, base)
	if b.Charges != 1 || b.ChargedCents != orderTotal || b.OrdersChargedTwice != 0 || b.Redeliveries != 1 || b.OtherEvents != 1 {
		t.Errorf("books %+v, want 1 charge, 1 redelivery and 1 other event ignored", b)
	}
}

func TestRedeliveredFailureIsRefundedOnce(t *testing.T) {
	app, base := recorderApp(t, fooddelivery.Options{})
	failed := restaurant.ConfirmationFailedV1{OrderID: "o-1", Customer: "ada", Restaurant: "napoli", AmountCents: orderTotal, Reason: "sold out", Rejected: true, Attempt: 1}

	// A refund for an order this ledger never charged is refused for good.
	r := troupetest.Deliver(t, app, "payment.reverse", failed, troupetest.WithID("ev-failed-1"))
	if r.Outcome != troupetest.DeadLetter || len(r.Published) != 0 {
		t.Errorf("refund of an uncharged order: %s, %v, published %d; want dead-lettered", r.Outcome, r.Err, len(r.Published))
	}

	if r := troupetest.Deliver(t, app, "payment.charge", placedEvent, troupetest.WithID("ev-placed-1")); r.Err != nil {
		t.Fatal(r.Err)
	}
	var refunds []troupe.Event[payment.ReversedV1]
	for attempt := 1; attempt <= 3; attempt++ {
		r := troupetest.Deliver(t, app, "payment.reverse", failed, troupetest.WithID("ev-failed-1"), troupetest.WithAttempt(attempt))
		if r.Err != nil {
			t.Fatalf("attempt %d: %v", attempt, r.Err)
		}
		refunds = append(refunds, troupetest.Events(t, r.Published, payment.Reversed)...)
	}
	if len(refunds) != 3 || refunds[0].ID != refunds[2].ID || refunds[0].Data.RefundID != refunds[2].Data.RefundID || refunds[0].Data.AmountCents != orderTotal {
		t.Errorf("refund events %+v: want the same event and refund on every delivery", refunds)
	}
	// A second failure event for the order (say, a replayed dead letter
	// published anew) refunds nothing.
	if r := troupetest.Deliver(t, app, "payment.reverse", failed, troupetest.WithID("ev-failed-2")); r.Err != nil || len(r.Published) != 0 {
		t.Errorf("a second failure event: %v, published %d", r.Err, len(r.Published))
	}
	b := books(t, base)
	if b.Charges != 1 || b.Refunds != 1 || b.NetCents != 0 || b.OrdersRefundedTwice != 0 || b.RefundsRefused != 1 || b.Redeliveries != 2 || b.OtherEvents != 1 {
		t.Errorf("books %+v, want 1 charge, 1 refund, 1 refused, 2 redeliveries and 1 other event", b)
	}
}

func TestDuplicateEventOnTheBrokerChargesOnce(t *testing.T) {
	var paid *troupetest.Observer[payment.SuccessV1]
	app, base := startApp(t, fooddelivery.Options{Restaurant: fastRestaurant(0)}, func(app *troupe.App) {
		paid = troupetest.Observe(t, app, payment.Success)
	})
	// An order placed twice under two event ids, as a buggy client or a
	// replay from another system would: both reach the payment service.
	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "o-1")
	for range 2 {
		if err := troupe.Publish(ctx, order.Placed, placedEvent); err != nil {
			t.Fatal(err)
		}
	}
	paid.WaitCorrelation(t, "o-1")
	deadline := time.Now().Add(waitTimeout)
	for b := books(t, base); b.OtherEvents < 1; b = books(t, base) {
		if time.Now().After(deadline) {
			t.Fatalf("the second order_placed never reached the ledger: %+v", b)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	o := waitTerminal(t, base, "o-1", 4)
	if b := books(t, base); b.Charges != 1 || b.OrdersChargedTwice != 0 {
		t.Errorf("books %+v, want one charge", b)
	}
	if n := len(paid.Events()); n != 1 {
		t.Errorf("%d payment_success events, want 1", n)
	}
	var l order.List
	getJSON(t, base+"/orders", &l)
	if len(o.Timeline) != 4 || l.Duplicates < 1 {
		t.Errorf("timeline %d events, %d duplicates ignored; want 4 events and the second order_placed ignored", len(o.Timeline), l.Duplicates)
	}
}

func TestCrashAfterChargingIsRedeliveredWithoutChargingTwice(t *testing.T) {
	// Every first attempt at a charge or refund fails right after the
	// gateway moved the money; the broker redelivers.
	_, base := startApp(t, fooddelivery.Options{Restaurant: fastRestaurant(1), Payment: payment.Options{CrashRate: 1}}, nil)
	key, _, _ := keyWithFate(t, "eve", 1, restaurant.Reject)
	id := place(t, base, orderBody("eve"), "Idempotency-Key", key)
	o := waitTerminal(t, base, id, 4)
	checkTimeline(t, o, compensationPath)
	if o.Timeline[1].Attempt != 2 || o.Timeline[3].Attempt != 2 {
		t.Errorf("payment events on attempts %d and %d, want 2 and 2: the first attempts crashed", o.Timeline[1].Attempt, o.Timeline[3].Attempt)
	}
	b := books(t, base)
	if b.Charges != 1 || b.Refunds != 1 || b.NetCents != 0 || b.SimulatedCrashes != 2 || b.Redeliveries != 2 {
		t.Errorf("books %+v, want 1 charge, 1 refund, 2 crashes, 2 redeliveries", b)
	}
}
