package fooddelivery_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/loyalty"
	"github.com/troupe-go/troupe/examples/fooddelivery/notification"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
)

func TestHappyPath(t *testing.T) {
	_, base := startApp(t, fooddelivery.Options{Restaurant: fastRestaurant(0)}, nil)
	id := place(t, base, orderBody("ada"))

	o := waitTerminal(t, base, id, 4)
	checkTimeline(t, o, successPath)
	if o.Status != "assigned" || o.Customer != "ada" || o.Restaurant != "napoli" || o.TotalCents != orderTotal || o.Conflict {
		t.Errorf("order = %+v", o)
	}
	for _, ev := range o.Timeline {
		if ev.Attempt != 1 {
			t.Errorf("%s produced on attempt %d, want 1: nothing failed", ev.Type, ev.Attempt)
		}
	}

	// The customer hears twice, once of each; the wallet is credited once.
	kinds := messages(t, base, id, 2)
	if !slices.Equal(kinds, []notification.Kind{notification.KindConfirmed, notification.KindCourier}) &&
		!slices.Equal(kinds, []notification.Kind{notification.KindCourier, notification.KindConfirmed}) {
		t.Errorf("messages about order %s: %v, want one confirmation and one courier message", id, kinds)
	}
	var w loyalty.Wallet
	getJSON(t, base+"/loyalty/ada", &w)
	if w.Points != orderTotal/100 || !slices.Equal(w.Orders, []string{id}) {
		t.Errorf("wallet %+v, want %d points for order %s", w, orderTotal/100, id)
	}

	var e payment.Entry
	getJSON(t, base+"/ledger?order="+id, &e)
	if e.AmountCents != orderTotal || e.ChargedBy != o.Timeline[0].ID || e.RefundID != "" {
		t.Errorf("ledger entry %+v, want %d charged by the order_placed event %s, no refund", e, orderTotal, o.Timeline[0].ID)
	}
	if b := books(t, base); b.Charges != 1 || b.ChargedCents != orderTotal || b.Refunds != 0 || b.NetCents != orderTotal {
		t.Errorf("books %+v, want one charge of %d", b, orderTotal)
	}
}

func TestRestaurantRejectionRefundsOnce(t *testing.T) {
	_, base := startApp(t, fooddelivery.Options{Restaurant: fastRestaurant(1)}, nil)
	key, want, _ := keyWithFate(t, "bob", 1, restaurant.Reject)
	id := place(t, base, orderBody("bob"), "Idempotency-Key", key)
	if id != want {
		t.Fatalf("order id %s, want %s derived from the key", id, want)
	}

	o := waitTerminal(t, base, id, 4)
	checkTimeline(t, o, compensationPath)
	if o.Status != "refunded" || o.Conflict {
		t.Errorf("order = %+v", o)
	}
	// A rejection is permanent: compensated on the first attempt.
	if failed := o.Timeline[2]; failed.Attempt != 1 || !strings.Contains(failed.Summary, "napoli") {
		t.Errorf("failure event %+v, want attempt 1 and the restaurant's reason", failed)
	}

	kinds := messages(t, base, id, 2)
	slices.Sort(kinds)
	if !slices.Equal(kinds, []notification.Kind{notification.KindCancelled, notification.KindRefunded}) {
		t.Errorf("messages about order %s: %v, want one cancellation and one refund message", id, kinds)
	}
	var e payment.Entry
	getJSON(t, base+"/ledger?order="+id, &e)
	if e.RefundID == "" || e.RefundedBy != o.Timeline[2].ID {
		t.Errorf("ledger entry %+v, want a refund for the failure event %s", e, o.Timeline[2].ID)
	}
	b := books(t, base)
	if b.Charges != 1 || b.Refunds != 1 || b.RefundedCents != orderTotal || b.NetCents != 0 || b.OrdersRefundedTwice != 0 {
		t.Errorf("books %+v, want one charge and one refund of %d", b, orderTotal)
	}
	status, body, _ := do(t, "GET", base+"/loyalty/bob", "")
	if status != http.StatusNotFound {
		t.Errorf("GET /loyalty/bob: %d %s; a cancelled order earns no points", status, body)
	}
}

func TestRestaurantDownIsCompensatedAfterTheLastAttempt(t *testing.T) {
	_, base := startApp(t, fooddelivery.Options{Restaurant: fastRestaurant(1)}, nil)
	key, _, _ := keyWithFate(t, "cy", 1, restaurant.Down)
	id := place(t, base, orderBody("cy"), "Idempotency-Key", key)

	o := waitTerminal(t, base, id, 4)
	checkTimeline(t, o, compensationPath)
	if failed := o.Timeline[2]; failed.Attempt != 4 || !strings.Contains(failed.Summary, "no answer in 4 attempts") {
		t.Errorf("failure event %+v, want it after the 4th attempt", failed)
	}
	if b := books(t, base); b.Charges != 1 || b.Refunds != 1 || b.NetCents != 0 {
		t.Errorf("books %+v, want one charge and one refund", b)
	}
}

func TestTransientRestaurantFailureRecoversWithoutCompensation(t *testing.T) {
	_, base := startApp(t, fooddelivery.Options{Restaurant: fastRestaurant(1)}, nil)
	key, _, fate := keyWithFate(t, "dee", 1, restaurant.Flaky)
	id := place(t, base, orderBody("dee"), "Idempotency-Key", key)

	o := waitTerminal(t, base, id, 4)
	checkTimeline(t, o, successPath)
	if confirmed := o.Timeline[2]; confirmed.Attempt != fate.Failures+1 {
		t.Errorf("confirmed on attempt %d, want %d: after %d failures", confirmed.Attempt, fate.Failures+1, fate.Failures)
	}
	kinds := messages(t, base, id, 2)
	if slices.Contains(kinds, notification.KindCancelled) || slices.Contains(kinds, notification.KindRefunded) || len(kinds) != 2 {
		t.Errorf("messages %v, want confirmation and courier only", kinds)
	}
	if b := books(t, base); b.Charges != 1 || b.Refunds != 0 || b.NetCents != orderTotal {
		t.Errorf("books %+v, want one charge and no refund", b)
	}
}
