package fooddelivery_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/notification"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/apitest"
	"github.com/troupe-go/troupe/troupetest"
)

// waitTimeout bounds every wait of these tests; a flow takes milliseconds.
const waitTimeout = 30 * time.Second

var client = apitest.Client

// fastRestaurant retries quickly, so the tests of its failure paths take
// milliseconds, not seconds.
func fastRestaurant(rate float64) restaurant.Options {
	return restaurant.Options{FailureRate: rate, MaxAttempts: 4, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

// startApp starts the app on its own embedded broker and a free port and
// returns it with its base URL. declare, if not nil, may add to the app
// first (a probe service).
func startApp(t *testing.T, opts fooddelivery.Options, declare func(*troupe.App)) (*troupe.App, string) {
	t.Helper()
	app := fooddelivery.NewApp(troupetest.Config(t, troupe.Config{HTTPAddr: "127.0.0.1:0"}), &opts)
	if declare != nil {
		declare(app)
	}
	troupetest.Start(t, app)
	// Registered after Start's cleanup, so it runs first: a connection the
	// client dialled but never used would hold the server's shutdown.
	t.Cleanup(client.CloseIdleConnections)
	return app, "http://" + app.HTTPAddr()
}

// The calls of these tests, shared with the other examples.
var (
	do      = apitest.Do
	getJSON = apitest.GetJSON
)

// orderBody is a valid order of customer; its total is 2×950 + 600 = 2500.
func orderBody(customer string) string {
	return fmt.Sprintf(`{"customer":%q,"restaurant":"napoli","items":[{"name":"margherita","qty":2,"price_cents":950},{"name":"tiramisu","qty":1,"price_cents":600}]}`, customer)
}

const orderTotal = 2500

// place posts an order and returns its id, checking the 202 answer.
func place(t testing.TB, base, body string, header ...string) string {
	t.Helper()
	status, b, h := do(t, "POST", base+"/orders", body, header...)
	if status != http.StatusAccepted {
		t.Fatalf("POST /orders: %d %s", status, b)
	}
	var a order.Accepted
	if err := json.Unmarshal(b, &a); err != nil || a.ID == "" || a.Status != order.StatusPlaced {
		t.Fatalf("POST /orders answered %s (%v)", b, err)
	}
	if loc := h.Get("Location"); loc != "/orders/"+a.ID || a.Links.Self != loc {
		t.Errorf("Location %q and self link %q, want /orders/%s", loc, a.Links.Self, a.ID)
	}
	return a.ID
}

// keyWithFate returns an Idempotency-Key under which customer's order meets
// fate kind at a restaurant failing rate of orders (with fastRestaurant's
// four attempts), and the order id it gives.
func keyWithFate(t testing.TB, customer string, rate float64, kind restaurant.FateKind) (key, id string, fate restaurant.Fate) {
	t.Helper()
	for i := range 1000 {
		key = fmt.Sprintf("%s-%s-%d", t.Name(), kind, i)
		id = order.IDForKey(customer, key)
		if fate = restaurant.Decide(id, rate, 4); fate.Kind == kind {
			return key, id, fate
		}
	}
	t.Fatalf("no key in 1000 gives fate %s", kind)
	return
}

// waitTerminal polls order id until it is terminal and its timeline holds
// n events, and returns it.
func waitTerminal(t testing.TB, base, id string, n int) order.Order {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var o order.Order
		getJSON(t, base+"/orders/"+id, &o)
		if o.Terminal && len(o.Timeline) >= n {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s not terminal with %d events after %s: %+v", id, n, waitTimeout, o)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// step is one expected event of a timeline.
type step struct {
	typ, service string
	status       order.Status
}

// checkTimeline checks that o's timeline is want, one business transaction
// in causal order.
func checkTimeline(t testing.TB, o order.Order, want []step) {
	t.Helper()
	if len(o.Timeline) != len(want) {
		t.Fatalf("order %s has %d events, want %d: %+v", o.ID, len(o.Timeline), len(want), o.Timeline)
	}
	for i, ev := range o.Timeline {
		w := want[i]
		if ev.Type != w.typ || ev.Service != w.service || ev.Status != w.status {
			t.Errorf("event %d is %s from %s (%s), want %s from %s (%s)", i, ev.Type, ev.Service, ev.Status, w.typ, w.service, w.status)
		}
		if ev.CorrelationID != o.ID {
			t.Errorf("%s has correlation id %q, want the order id %q", ev.Type, ev.CorrelationID, o.ID)
		}
		if ev.ID == "" || ev.Time.IsZero() || ev.Summary == "" || ev.Attempt < 1 {
			t.Errorf("%s lacks an id, a time, a summary or an attempt: %+v", ev.Type, ev)
		}
		if i == 0 {
			if ev.CausationID != "" {
				t.Errorf("%s has causation id %q, want none", ev.Type, ev.CausationID)
			}
			continue
		}
		prev := o.Timeline[i-1]
		if ev.CausationID != prev.ID {
			t.Errorf("%s has causation id %q, want the id of %s, %q", ev.Type, ev.CausationID, prev.Type, prev.ID)
		}
		if ev.Time.Before(prev.Time) {
			t.Errorf("%s at %s is earlier than its cause %s at %s", ev.Type, ev.Time, prev.Type, prev.Time)
		}
	}
}

var (
	successPath = []step{
		{"order_placed.v1", "order", order.StatusPlaced},
		{"payment_success.v1", "payment", order.StatusPaid},
		{"restaurant_confirmed_order.v1", "restaurant", order.StatusConfirmed},
		{"delivery_partner_assigned.v1", "delivery-partner", order.StatusAssigned},
	}
	compensationPath = []step{
		{"order_placed.v1", "order", order.StatusPlaced},
		{"payment_success.v1", "payment", order.StatusPaid},
		{"restaurant_order_confirmation_failed.v1", "restaurant", order.StatusCancelled},
		{"payment_reversed.v1", "payment", order.StatusRefunded},
	}
)

// messages returns the kinds of the messages sent about order id, waiting
// until there are n.
func messages(t testing.TB, base, id string, n int) []notification.Kind {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var out notification.Sent
		getJSON(t, base+"/notifications?order="+id, &out)
		if out.Count >= n || time.Now().After(deadline) {
			var kinds []notification.Kind
			for _, m := range out.Messages {
				kinds = append(kinds, m.Kind)
			}
			return kinds
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func books(t testing.TB, base string) payment.Books {
	t.Helper()
	var b payment.Books
	getJSON(t, base+"/ledger", &b)
	return b
}
