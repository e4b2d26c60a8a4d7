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
// what the outboxes' relays publish lands in the Recorder, and the ledger
// is read over HTTP as in production.
func recorderApp(t *testing.T, opts fooddelivery.Options) (*troupe.App, string, *troupetest.Recorder) {
	t.Helper()
	rec := troupetest.NewRecorder()
	app := fooddelivery.NewApp(troupetest.Config(t, troupe.Config{Transport: rec, HTTPAddr: "127.0.0.1:0"}), &opts)
	troupetest.Start(t, app)
	t.Cleanup(client.CloseIdleConnections)
	return app, "http://" + app.HTTPAddr(), rec
}

// relayed waits until the relays have published n events of topic t, and
// returns them; more than n fails the test.
func relayed[T any](t *testing.T, rec *troupetest.Recorder, topic *troupe.Topic[T], n int) []troupe.Event[T] {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		evs := troupetest.Events(t, rec.Published(), topic)
		if len(evs) > n {
			t.Fatalf("%d %s events published, want %d", len(evs), topic.Name(), n)
		}
		if len(evs) == n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events published after %s, want %d", len(evs), topic.Name(), waitTimeout, n)
		}
		time.Sleep(5 * time.Millisecond) // poll interval: the relay gives no signal
	}
}

var placedEvent = order.PlacedV1{
	OrderID: "o-1", Customer: "ada", Restaurant: "napoli", TotalCents: orderTotal,
	Items: []order.Item{{Name: "margherita", Qty: 2, PriceCents: 950}, {Name: "tiramisu", Qty: 1, PriceCents: 600}},
}

func TestRedeliveredOrderIsChargedOnce(t *testing.T) {
	app, base, rec := recorderApp(t, fooddelivery.Options{})
	first := troupetest.Deliver(t, app, "payment.charge", placedEvent,
		troupetest.WithID("ev-placed-1"), troupetest.WithCorrelationID("o-1"))
	// The broker redelivers the same event: its ack was lost. The inbox
	// knows it: acknowledged, nothing done.
	again := troupetest.Deliver(t, app, "payment.charge", placedEvent,
		troupetest.WithID("ev-placed-1"), troupetest.WithCorrelationID("o-1"), troupetest.WithAttempt(2))
	// The same order under another event id (a client that bypassed the
	// Idempotency-Key): ignored.
	other := troupetest.Deliver(t, app, "payment.charge", placedEvent,
		troupetest.WithID("ev-placed-2"), troupetest.WithCorrelationID("o-1"))
	for _, r := range []troupetest.Result{first, again, other} {
		if r.Err != nil || r.Outcome != troupetest.Ack {
			t.Fatalf("delivery of %s, attempt %d: %v (%s)", r.Event.ID, r.Event.Attempt, r.Err, r.Outcome)
		}
	}
	paid := relayed(t, rec, payment.Success, 1)
	if p := paid[0]; p.CorrelationID != "o-1" || p.CausationID != "ev-placed-1" || p.Data.AmountCents != orderTotal || p.Data.ChargeID == "" {
		t.Errorf("payment_success %+v (correlation %s, causation %s)", p.Data, p.CorrelationID, p.CausationID)
	}
	b := books(t, base)
	if b.Charges != 1 || b.ChargedCents != orderTotal || b.OrdersChargedTwice != 0 || b.OtherEvents != 1 || b.RepeatedRequests != 0 {
		t.Errorf("books %+v, want 1 charge and 1 other event ignored", b)
	}
	var e payment.Entry
	getJSON(t, base+"/ledger?order=o-1", &e)
	if e.ChargedBy != "ev-placed-1" || e.ChargeID != paid[0].Data.ChargeID || len(e.Movements) != 1 || e.Movements[0].Key != "o-1/charge" {
		t.Errorf("ledger entry %+v", e)
	}
}

func TestCrashBeforeCommitIsRetriedWithoutChargingTwice(t *testing.T) {
	// Every first attempt at a charge fails right after the gateway moved
	// the money, before the ledger's transaction commits.
	app, base, rec := recorderApp(t, fooddelivery.Options{Payment: payment.Options{CrashRate: 1}})
	first := troupetest.Deliver(t, app, "payment.charge", placedEvent, troupetest.WithID("ev-placed-1"))
	if first.Err == nil || first.Outcome != troupetest.Retry {
		t.Fatalf("first attempt: %v (%s), want a crash and a retry", first.Err, first.Outcome)
	}
	if b := books(t, base); b.Charges != 1 || b.Redeliveries != 0 {
		t.Errorf("after the crash: books %+v, want the gateway's charge and nothing in the ledger", b)
	}
	if status, body, _ := do(t, "GET", base+"/ledger?order=o-1", ""); status != 404 {
		t.Errorf("ledger entry after the crash: %d %s, want 404: the transaction rolled back", status, body)
	}
	retry := troupetest.Deliver(t, app, "payment.charge", placedEvent, troupetest.WithID("ev-placed-1"), troupetest.WithAttempt(2))
	if retry.Err != nil {
		t.Fatalf("retry: %v", retry.Err)
	}
	relayed(t, rec, payment.Success, 1)
	b := books(t, base)
	if b.Charges != 1 || b.OrdersChargedTwice != 0 || b.RepeatedRequests != 1 || b.Redeliveries != 1 || b.SimulatedCrashes != 1 {
		t.Errorf("books %+v, want 1 charge, 1 repeated request, 1 redelivery, 1 simulated crash", b)
	}
}

func TestRedeliveredFailureIsRefundedOnce(t *testing.T) {
	app, base, rec := recorderApp(t, fooddelivery.Options{})
	failed := restaurant.ConfirmationFailedV1{OrderID: "o-1", Customer: "ada", Restaurant: "napoli", AmountCents: orderTotal, Reason: "sold out", Rejected: true, Attempt: 1}

	// A refund for an order this ledger never charged is refused for good.
	r := troupetest.Deliver(t, app, "payment.reverse", failed, troupetest.WithID("ev-failed-0"))
	if r.Outcome != troupetest.DeadLetter || !troupe.IsPermanent(r.Err) {
		t.Errorf("refund of an uncharged order: %s, %v; want dead-lettered", r.Outcome, r.Err)
	}

	if r := troupetest.Deliver(t, app, "payment.charge", placedEvent, troupetest.WithID("ev-placed-1")); r.Err != nil {
		t.Fatal(r.Err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		r := troupetest.Deliver(t, app, "payment.reverse", failed, troupetest.WithID("ev-failed-1"), troupetest.WithAttempt(attempt))
		if r.Err != nil {
			t.Fatalf("attempt %d: %v", attempt, r.Err)
		}
	}
	// A second failure event for the order (say, a replayed dead letter
	// published anew) refunds nothing.
	if r := troupetest.Deliver(t, app, "payment.reverse", failed, troupetest.WithID("ev-failed-2")); r.Err != nil {
		t.Errorf("a second failure event: %v", r.Err)
	}
	refunds := relayed(t, rec, payment.Reversed, 1)
	if d := refunds[0].Data; d.AmountCents != orderTotal || d.RefundID == "" || refunds[0].CausationID != "ev-failed-1" {
		t.Errorf("refund event %+v", refunds[0])
	}
	b := books(t, base)
	if b.Charges != 1 || b.Refunds != 1 || b.NetCents != 0 || b.OrdersRefundedTwice != 0 || b.OtherEvents != 1 || b.RepeatedRequests != 0 {
		t.Errorf("books %+v, want 1 charge, 1 refund and 1 other event", b)
	}
	var e payment.Entry
	getJSON(t, base+"/ledger?order=o-1", &e)
	if e.RefundedBy != "ev-failed-1" || e.RefundID != refunds[0].Data.RefundID || len(e.Movements) != 2 {
		t.Errorf("ledger entry %+v", e)
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
	if b.Charges != 1 || b.Refunds != 1 || b.NetCents != 0 || b.SimulatedCrashes != 2 || b.Redeliveries != 2 || b.RepeatedRequests != 2 {
		t.Errorf("books %+v, want 1 charge, 1 refund, 2 crashes, 2 redeliveries", b)
	}
}

// A refund the ledger cannot make (no charge for the order) is not the
// silent end of the order: it waits in the dead letters, GET /ledger
// counts it, and GET /orders counts the order as stuck.
func TestRefundOfAnUnchargedOrderWaitsInDeadLetters(t *testing.T) {
	app, base := startApp(t, fooddelivery.Options{Restaurant: fastRestaurant(0)}, nil)
	ctx := troupe.WithCorrelationID(app.Context(context.Background()), "ghost")
	if err := troupe.Publish(ctx, restaurant.ConfirmationFailed, restaurant.ConfirmationFailedV1{
		OrderID: "ghost", Customer: "ada", Restaurant: "napoli", AmountCents: orderTotal, Reason: "sold out", Rejected: true, Attempt: 1,
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for b := books(t, base); b.RefundsRefused != 1; b = books(t, base) {
		if time.Now().After(deadline) {
			t.Fatalf("books %+v, want the refund in the dead letters", b)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	var l order.List
	getJSON(t, base+"/orders", &l)
	if l.Stuck != 1 || l.ByStatus[string(order.StatusCancelled)] != 1 {
		t.Errorf("GET /orders: %+v, want the order cancelled and stuck", l.Counts)
	}
	if b := books(t, base); b.Refunds != 0 || b.Charges != 0 {
		t.Errorf("books %+v, want nothing moved", b)
	}
}
