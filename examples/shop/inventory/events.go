package inventory

import (
	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/orders"
)

// Reserved is published once an order's items are set aside for it. The
// shipping service ships them.
var Reserved = troupe.NewTopic[ReservedV1]("inventory_reserved", 1)

// ReservedV1 is the data of a [Reserved] event, version 1.
type ReservedV1 struct {
	OrderID  string        `json:"order_id"`
	Customer string        `json:"customer"`
	Lines    []orders.Line `json:"lines"`
	// ReservationID names the reservation, for picking in the warehouse.
	ReservationID string `json:"reservation_id"`
}

// OrderRef returns the order id; it makes ReservedV1 an [orders.StepEvent].
func (e ReservedV1) OrderRef() string { return e.OrderID }

// Summary describes the reservation, as "reserved 2×book".
func (e ReservedV1) Summary() string { return "reserved " + orders.DescribeLines(e.Lines) }

// ReservationFailed is the inventory's declared compensation for a paid
// order it cannot reserve: troupe publishes it instead of dead-lettering
// the payment_succeeded event (troupe.OnFailure). The payment service
// refunds the order.
var ReservationFailed = troupe.NewTopic[ReservationFailedV1]("inventory_reservation_failed", 1)

// ReservationFailedV1 is the data of a [ReservationFailed] event, version 1.
type ReservationFailedV1 struct {
	OrderID  string        `json:"order_id"`
	Customer string        `json:"customer"`
	Lines    []orders.Line `json:"lines"`
	// Amount is what the order was charged.
	Amount orders.Money `json:"amount"`
	// Reason says why, as "out of stock: 1×book wanted, 0 on the shelf".
	Reason string `json:"reason"`
	// OutOfStock reports that the shelf could not cover the order, rather
	// than a failure of the service itself.
	OutOfStock bool `json:"out_of_stock"`
	// Attempts is how many attempts were made.
	Attempts int `json:"attempts"`
}

// OrderRef returns the order id; it makes ReservationFailedV1 an
// [orders.StepEvent].
func (e ReservationFailedV1) OrderRef() string { return e.OrderID }

// CustomerRef returns the customer; it makes ReservationFailedV1 a
// [payment.RefundCause].
func (e ReservationFailedV1) CustomerRef() string { return e.Customer }

// Summary describes the failure, as "could not reserve 1×book: out of stock: …".
func (e ReservationFailedV1) Summary() string {
	return "could not reserve " + orders.DescribeLines(e.Lines) + ": " + e.Reason
}

// FailureReason makes ReservationFailedV1 an [orders.Failure] and a
// [payment.RefundCause].
func (e ReservationFailedV1) FailureReason() string { return e.Reason }
