package fooddelivery_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/notification"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
)

// chaosOrders is how many orders TestChaos places. The soak of issue #4,
// 10,000 orders, takes about a minute on a 2-core machine now that every
// step commits to a database:
//
//	go test ./examples/fooddelivery/fooddelivery -run Chaos -v -args -chaos-orders 10000
var chaosOrders = flag.Int("chaos-orders", 1000, "orders TestChaos places (10000 for the soak)")

// The chaos run of issue #4: many orders, a fifth of which meet a failing
// restaurant (rejections, and outages that end before or after the last
// attempt), and payment attempts that crash after moving the money. Every
// order must end in exactly one terminal state, the one its fate calls
// for, and the money must reconcile to the cent.
func TestChaos(t *testing.T) {
	n := *chaosOrders
	if raceEnabled {
		n = min(n, 500) // the race detector is ten times slower
	}
	const failureRate, crashRate = 0.2, 0.02
	app, base := startApp(t, fooddelivery.Options{
		Restaurant: fastRestaurant(failureRate),
		Payment:    payment.Options{CrashRate: crashRate},
	}, nil)

	var progress strings.Builder
	start := time.Now()
	rep, err := fooddelivery.Simulate(context.Background(), fooddelivery.Simulation{
		BaseURL: base, Orders: n, Concurrency: 16, Timeout: 3 * time.Minute, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, progress.String())
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("%d orders, restaurant failure rate %.2f, payment crash rate %.2f, on the embedded broker, in %s:\n%s",
		n, failureRate, crashRate, time.Since(start).Round(time.Millisecond), table.String())
	if !rep.OK() {
		t.Errorf("the run did not reconcile:\n%s\nprogress:\n%s", table.String(), progress.String())
	}

	// Check each order against its fate, from the read model, without
	// trusting the report.
	var l order.List
	getJSON(t, fmt.Sprintf("%s/orders?limit=%d", base, n), &l)
	byID := make(map[string]order.Summary, len(l.Orders))
	for _, o := range l.Orders {
		byID[o.ID] = o
	}
	fates := make(map[restaurant.FateKind]int)
	var assigned, refunded int
	var placedCents, assignedCents, refundedCents int64
	wrong := 0
	for _, id := range rep.IDs {
		o, ok := byID[id]
		fate := restaurant.Decide(id, failureRate, 4)
		fates[fate.Kind]++
		want := order.StatusAssigned
		if fate.Kind == restaurant.Reject || fate.Kind == restaurant.Down {
			want = order.StatusRefunded
		}
		if !ok || o.Status != want {
			if wrong++; wrong <= 10 {
				t.Errorf("order %s (fate %s) is %q, want %s", id, fate.Kind, o.Status, want)
			}
			continue
		}
		placedCents += o.TotalCents
		switch o.Status {
		case order.StatusAssigned:
			assigned++
			assignedCents += o.TotalCents
		case order.StatusRefunded:
			refunded++
			refundedCents += o.TotalCents
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d orders did not end as their fate says", wrong, n)
	}
	if l.Orders == nil || l.Count != n || l.Conflicts != 0 || l.Stuck != 0 {
		t.Errorf("read model: %d orders, %d conflicts, %d stuck; want %d, 0, 0", l.Count, l.Conflicts, l.Stuck, n)
	}
	// The run must have met every kind of failure, or it proved little.
	for _, k := range []restaurant.FateKind{restaurant.Confirm, restaurant.Reject, restaurant.Flaky, restaurant.Down} {
		if fates[k] == 0 {
			t.Errorf("no order met fate %s: %v", k, fates)
		}
	}

	// The gateway's books against the orders: every order charged once,
	// every cancelled one refunded once, nothing else moved.
	b := books(t, base)
	if b.Charges != n || b.ChargedCents != placedCents || b.Refunds != refunded || b.RefundedCents != refundedCents ||
		b.NetCents != assignedCents || b.OrdersChargedTwice != 0 || b.OrdersRefundedTwice != 0 || b.RefundsRefused != 0 {
		t.Errorf("books %+v; want %d charges of %d cents, %d refunds of %d cents, net %d", b, n, placedCents, refunded, refundedCents, assignedCents)
	}
	if b.SimulatedCrashes == 0 || b.Redeliveries < b.SimulatedCrashes || b.RepeatedRequests < b.SimulatedCrashes {
		t.Errorf("books %+v: want simulated crashes, each followed by a retry that moved no money", b)
	}

	// The customers heard of every outcome once.
	var out notification.Sent
	getJSON(t, base+"/notifications?customer=nobody", &out)
	want := map[notification.Kind]int{
		notification.KindConfirmed: assigned, notification.KindCourier: assigned,
		notification.KindCancelled: refunded, notification.KindRefunded: refunded,
	}
	for k, w := range want {
		if out.AllByKind[k] != w {
			t.Errorf("%d %s messages, want %d", out.AllByKind[k], k, w)
		}
	}
	if out.SentTwice != 0 {
		t.Errorf("%d customers told the same thing twice", out.SentTwice)
	}

	// Nothing waits in dead letters: every failure was compensated.
	for _, svc := range app.Services() {
		for _, sub := range svc.Subscriptions() {
			dls, err := app.DeadLetters(context.Background(), sub.String(), 0)
			if err != nil || len(dls) != 0 {
				t.Errorf("%s: %d dead letters (%v), want none", sub, len(dls), err)
			}
		}
	}

	// A sample of timelines, one transaction each in causal order.
	for i, id := range rep.IDs {
		if i%(n/50) != 0 {
			continue
		}
		var o order.Order
		getJSON(t, base+"/orders/"+id, &o)
		if o.Status == order.StatusAssigned {
			checkTimeline(t, o, successPath)
		} else {
			checkTimeline(t, o, compensationPath)
		}
	}
	t.Logf("fates %v; read model ignored %d duplicate events; ledger: %d crashes, %d redeliveries, gateway: %d repeated requests",
		fates, l.Duplicates, b.SimulatedCrashes, b.Redeliveries, b.RepeatedRequests)
}
