package orders

import (
	"fmt"
	"strings"

	"github.com/troupe-go/troupe"
)

// Placed is the first event of every order's fulfilment. The orders service
// publishes it once an order has passed validation; the payment service
// charges for it.
var Placed = troupe.NewTopic[PlacedV1]("order_placed", 1)

// PlacedV1 is the data of a [Placed] event, version 1. It carries everything
// the later steps need (who, what, how much), so that no service has to call
// back into the orders service.
type PlacedV1 struct {
	// OrderID identifies the order. It is also the correlation id of every
	// event of the order's fulfilment.
	OrderID string `json:"order_id"`
	// Customer is who placed the order.
	Customer string `json:"customer"`
	// Lines are the ordered items with the unit price at the time of the order.
	Lines []Line `json:"lines"`
	// Total is the sum of the lines.
	Total Money `json:"total"`
}

// OrderRef returns the order id; it makes PlacedV1 a [StepEvent].
func (e PlacedV1) OrderRef() string { return e.OrderID }

// Summary describes the order in a few words, as "2×book for ada, 24.00 EUR".
func (e PlacedV1) Summary() string {
	return fmt.Sprintf("%s for %s, %s", DescribeLines(e.Lines), e.Customer, e.Total)
}

// Item is one line of an order as a customer asks for it.
type Item struct {
	// SKU names the product, as listed in the catalog ("book").
	SKU string `json:"sku"`
	// Qty is how many, at least 1.
	Qty int `json:"qty"`
}

// Line is an ordered item with its price.
type Line struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
	// UnitPrice is the catalog price when the order was placed.
	UnitPrice Money `json:"unit_price"`
}

// DescribeLines writes lines as "2×book, 1×pen", for logs and summaries.
func DescribeLines(lines []Line) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = fmt.Sprintf("%d×%s", l.Qty, l.SKU)
	}
	return strings.Join(parts, ", ")
}

// Money is an amount in cents of a currency. Integer cents keep sums exact.
type Money struct {
	Cents    int64  `json:"cents"`
	Currency string `json:"currency"`
}

// String formats m as "24.00 EUR".
func (m Money) String() string {
	sign := ""
	c := m.Cents
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, c/100, c%100, m.Currency)
}

// Status is how far an order has come. An order takes one of four paths,
// and its status only moves forward along it:
//
//	placed → paid → reserved → shipped → notified               the goods are on their way
//	placed → declined → cancelled                               the card was declined; nothing was charged
//	placed → paid → reservation_failed → refunded → cancelled   out of stock after payment; the charge is refunded
//	placed → payment_failed → refunded → cancelled              the provider never answered; whatever it took is refunded
//
// notified and cancelled are terminal: the customer has been told how the
// order ended, and nothing more happens to it.
type Status string

// The statuses of an order.
const (
	StatusPlaced            Status = "placed"
	StatusPaid              Status = "paid"
	StatusDeclined          Status = "declined"
	StatusPaymentFailed     Status = "payment_failed"
	StatusReserved          Status = "reserved"
	StatusReservationFailed Status = "reservation_failed"
	StatusShipped           Status = "shipped"
	StatusRefunded          Status = "refunded"
	StatusNotified          Status = "notified"
	StatusCancelled         Status = "cancelled"
)

// statusRank orders the statuses so that each path above climbs: an
// order's status is the highest-ranked step it has heard of, whatever order
// the events arrive in, and its timeline is sorted by rank. The paths never
// share a rank where they differ, because an order takes one path only.
var statusRank = map[Status]int{
	StatusPlaced:            0,
	StatusPaid:              1,
	StatusDeclined:          1,
	StatusPaymentFailed:     1,
	StatusReserved:          2,
	StatusReservationFailed: 2,
	StatusShipped:           3,
	StatusRefunded:          4,
	StatusNotified:          5,
	StatusCancelled:         5,
}

// Terminal reports whether s ends an order: notified or cancelled.
func (s Status) Terminal() bool { return s == StatusNotified || s == StatusCancelled }

// shipped reports whether an order in status s has its goods on the way.
func (s Status) shipped() bool { return s == StatusShipped || s == StatusNotified }
