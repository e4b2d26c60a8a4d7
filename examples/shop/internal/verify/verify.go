// Package verify holds the checks the shop's tests make through its HTTP
// API, as a user would: that an order took one of the shop's paths from
// start to end, and that the list of orders, the gateway's books and the
// mail provider's record agree once every order has ended.
package verify

import (
	"fmt"
	"slices"
	"strings"

	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/internal/messenger"
	"github.com/troupe-go/troupe/examples/shop/orders"
)

// Step is one event of a path: its type, the service that publishes it,
// and the status it moves the order to.
type Step struct {
	Type, Service string
	Status        orders.Status
}

// The paths an order can take, from order_placed to the customer told.
var (
	Shipped = []Step{
		{"order_placed.v1", "orders", orders.StatusPlaced},
		{"payment_succeeded.v1", "payment", orders.StatusPaid},
		{"inventory_reserved.v1", "inventory", orders.StatusReserved},
		{"shipping_arranged.v1", "shipping", orders.StatusShipped},
		{"customer_notified.v1", "notification", orders.StatusNotified},
	}
	Declined = []Step{
		{"order_placed.v1", "orders", orders.StatusPlaced},
		{"payment_declined.v1", "payment", orders.StatusDeclined},
		{"customer_notified.v1", "notification", orders.StatusCancelled},
	}
	OutOfStock = []Step{
		{"order_placed.v1", "orders", orders.StatusPlaced},
		{"payment_succeeded.v1", "payment", orders.StatusPaid},
		{"inventory_reservation_failed.v1", "inventory", orders.StatusReservationFailed},
		{"payment_refunded.v1", "payment", orders.StatusRefunded},
		{"customer_notified.v1", "notification", orders.StatusCancelled},
	}
	PaymentFailed = []Step{
		{"order_placed.v1", "orders", orders.StatusPlaced},
		{"payment_failed.v1", "payment", orders.StatusPaymentFailed},
		{"payment_refunded.v1", "payment", orders.StatusRefunded},
		{"customer_notified.v1", "notification", orders.StatusCancelled},
	}
	// Paths are all of them, by name.
	Paths = map[string][]Step{"shipped": Shipped, "declined": Declined, "out of stock": OutOfStock, "payment failed": PaymentFailed}
)

// Ended checks that o has ended (notified or cancelled) along one of the
// paths, each event once, caused by the one before, with the order id as
// correlation id and published by its service of app; and that a cancelled
// order says why. It returns the path's name.
func Ended(o orders.Order, app string) (string, error) {
	var types []string
	for _, e := range o.Events {
		types = append(types, e.Type)
	}
	if !o.Status.Terminal() || !o.Terminal {
		return "", fmt.Errorf("order %s is %s (terminal %v), timeline %v", o.ID, o.Status, o.Terminal, types)
	}
	var name string
	var path []Step
	for n, p := range Paths {
		if slices.EqualFunc(p, o.Events, func(s Step, e orders.TimelineEvent) bool { return s.Type == e.Type }) {
			name, path = n, p
		}
	}
	if path == nil {
		return "", fmt.Errorf("order %s (%s) has timeline %v, which is none of the shop's paths", o.ID, o.Status, types)
	}
	var problems []string
	if last := path[len(path)-1].Status; o.Status != last {
		problems = append(problems, fmt.Sprintf("status %s after the %s path, want %s", o.Status, name, last))
	}
	if (o.Status == orders.StatusCancelled) != (o.Reason != "") {
		problems = append(problems, fmt.Sprintf("status %s with reason %q", o.Status, o.Reason))
	}
	for i, e := range o.Events {
		cause := ""
		if i > 0 {
			cause = o.Events[i-1].ID
		}
		switch want := path[i]; {
		case e.Status != want.Status:
			problems = append(problems, fmt.Sprintf("%s moved the order to %s, want %s", e.Type, e.Status, want.Status))
		case e.CorrelationID != o.ID:
			problems = append(problems, fmt.Sprintf("%s has correlation id %q", e.Type, e.CorrelationID))
		case e.CausationID != cause:
			problems = append(problems, fmt.Sprintf("%s has causation id %q, want %q: the chain is broken", e.Type, e.CausationID, cause))
		case e.Source != "/"+app+"/"+want.Service:
			problems = append(problems, fmt.Sprintf("%s comes from %q, want /%s/%s", e.Type, e.Source, app, want.Service))
		case e.ID == "" || e.Summary == "" || e.Time.IsZero():
			problems = append(problems, fmt.Sprintf("%s lacks an id, a summary or a time: %+v", e.Type, e))
		}
	}
	if len(problems) > 0 {
		return name, fmt.Errorf("order %s: %s", o.ID, strings.Join(problems, "; "))
	}
	return name, nil
}

// Reconcile compares what GET /orders, GET /ledger and GET /notifications
// say once the shop is idle: every order ended, the money the gateway kept
// is what the shipped orders are worth, no order was charged or refunded
// twice, and every order got exactly one message. It returns the problems
// found.
func Reconcile(l orders.List, b gateway.Books, m messenger.Stats) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if l.Stuck != 0 || l.Terminal != l.Count {
		bad("%d orders, %d terminal, %d stuck (%v)", l.Count, l.Terminal, l.Stuck, l.ByStatus)
	}
	if b.NetCents != l.ShippedCents {
		bad("the gateway kept %d cents (charged %d, refunded %d), the shipped orders are worth %d", b.NetCents, b.ChargedCents, b.RefundedCents, l.ShippedCents)
	}
	if b.OrdersChargedTwice != 0 || b.OrdersRefundedTwice != 0 {
		bad("%d orders charged twice, %d refunded twice", b.OrdersChargedTwice, b.OrdersRefundedTwice)
	}
	if b.Refunds > l.ByStatus[string(orders.StatusCancelled)] {
		bad("%d refunds for %d cancelled orders", b.Refunds, l.ByStatus[string(orders.StatusCancelled)])
	}
	if m.SentTwice != 0 || m.Messages != l.Count {
		bad("%d messages for %d orders, %d told twice", m.Messages, l.Count, m.SentTwice)
	}
	return problems
}
