package order

import (
	"fmt"
	"strings"

	"github.com/troupe-go/troupe"
)

// Placed starts every order's business transaction. The order service
// publishes it for each order accepted over HTTP, with the order id as the
// correlation id; the payment service charges the customer for it.
var Placed = troupe.NewTopic[PlacedV1]("order_placed", 1)

// PlacedV1 is the data of a [Placed] event, version 1. It carries what the
// later steps need (who, where from, what, how much), so no service has to
// call back into the order service.
type PlacedV1 struct {
	// OrderID identifies the order and is the correlation id of every event
	// of its business transaction.
	OrderID    string `json:"order_id"`
	Customer   string `json:"customer"`
	Restaurant string `json:"restaurant"`
	Items      []Item `json:"items"`
	// TotalCents is the sum of the items, in euro cents.
	TotalCents int64 `json:"total_cents"`
}

// OrderRef returns the order id; with Summary and ProducedOnAttempt it
// makes PlacedV1 a [StepEvent].
func (e PlacedV1) OrderRef() string { return e.OrderID }

// Summary describes the order, as "2×margherita from napoli for ada, 19.00 EUR".
func (e PlacedV1) Summary() string {
	return fmt.Sprintf("%s from %s for %s, %s", DescribeItems(e.Items), e.Restaurant, e.Customer, FormatCents(e.TotalCents))
}

// ProducedOnAttempt is 1: an order is placed by an HTTP request, not by a
// handler that could have been retried.
func (e PlacedV1) ProducedOnAttempt() int { return 1 }

// Item is one line of an order: a dish, how many, and its unit price.
type Item struct {
	// Name is the dish as the restaurant's menu calls it.
	Name string `json:"name"`
	// Qty is how many, 1 to 50.
	Qty int `json:"qty"`
	// PriceCents is the unit price in euro cents, 1 to 100000. Integer
	// cents keep every sum exact.
	PriceCents int64 `json:"price_cents"`
}

// DescribeItems writes items as "2×margherita, 1×tiramisu".
func DescribeItems(items []Item) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = fmt.Sprintf("%d×%s", it.Qty, it.Name)
	}
	return strings.Join(parts, ", ")
}

// FormatCents formats euro cents as "19.00 EUR".
func FormatCents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d EUR", sign, c/100, c%100)
}

// StepEvent is implemented by the data of every event of an order's
// business transaction, so the order service can follow topics declared in
// other packages without importing them.
type StepEvent interface {
	// OrderRef returns the id of the order the event belongs to.
	OrderRef() string
	// Summary says in a few words what happened, for the timeline.
	Summary() string
	// ProducedOnAttempt returns the attempt of the handler that published
	// the event: 3 when a restaurant confirmed an order on the third try.
	ProducedOnAttempt() int
}

// Status is where an order stands. The success path is placed → paid →
// confirmed → assigned; the compensation path is placed → paid → cancelled
// → refunded. Assigned and refunded are terminal.
type Status string

// The statuses of an order.
const (
	StatusPlaced    Status = "placed"    // accepted, not yet charged
	StatusPaid      Status = "paid"      // charged, waiting for the restaurant
	StatusConfirmed Status = "confirmed" // the restaurant accepted it
	StatusAssigned  Status = "assigned"  // a delivery partner picks it up: done
	StatusCancelled Status = "cancelled" // the restaurant could not take it; a refund is due
	StatusRefunded  Status = "refunded"  // the charge was reversed: done
)

// rank orders the statuses of one path; a status only moves to a higher
// rank. The two paths share the first two steps.
var rank = map[Status]int{
	StatusPlaced:    0,
	StatusPaid:      1,
	StatusConfirmed: 2,
	StatusCancelled: 2,
	StatusAssigned:  3,
	StatusRefunded:  3,
}

// Terminal reports whether s ends the order's business transaction.
func (s Status) Terminal() bool { return s == StatusAssigned || s == StatusRefunded }

// success reports whether s lies on the success path past payment.
func (s Status) success() bool { return s == StatusConfirmed || s == StatusAssigned }

// compensation reports whether s lies on the compensation path.
func (s Status) compensation() bool { return s == StatusCancelled || s == StatusRefunded }

// otherPath returns the statuses of the path s does not lie on: an order
// in one of them that hears of s heard both outcomes. Statuses before the
// paths part have no other path ("" matches no order).
func (s Status) otherPath() [2]Status {
	switch {
	case s.success():
		return [2]Status{StatusCancelled, StatusRefunded}
	case s.compensation():
		return [2]Status{StatusConfirmed, StatusAssigned}
	}
	return [2]Status{"", ""}
}
