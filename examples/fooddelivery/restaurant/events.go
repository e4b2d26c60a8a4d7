package restaurant

import (
	"fmt"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
)

// ConfirmedOrder is published when a restaurant accepts a paid order. It
// fans out to four services: the order service records it, the
// notification service tells the customer, the delivery-partner service
// finds a courier, and the loyalty service adds points.
var ConfirmedOrder = troupe.NewTopic[ConfirmedOrderV1]("restaurant_confirmed_order", 1)

// ConfirmationFailed is the restaurant's compensation event: published by
// troupe (through OnFailure) when a restaurant rejects a paid order or
// does not answer on any attempt. The payment service refunds the charge,
// the notification service tells the customer, the order service marks the
// order cancelled.
var ConfirmationFailed = troupe.NewTopic[ConfirmationFailedV1]("restaurant_order_confirmation_failed", 1)

// ConfirmedOrderV1 is the data of a [ConfirmedOrder] event, version 1.
type ConfirmedOrderV1 struct {
	OrderID     string       `json:"order_id"`
	Customer    string       `json:"customer"`
	Restaurant  string       `json:"restaurant"`
	Items       []order.Item `json:"items"`
	AmountCents int64        `json:"amount_cents"`
	// ReadyInMinutes is when the restaurant expects the food to be ready.
	ReadyInMinutes int `json:"ready_in_minutes"`
	// Attempt is the attempt on which the restaurant confirmed.
	Attempt int `json:"attempt"`
}

// OrderRef returns the order id; it makes ConfirmedOrderV1 an
// [order.StepEvent].
func (e ConfirmedOrderV1) OrderRef() string { return e.OrderID }

// Summary describes the confirmation, as "napoli confirmed, ready in 25 min".
func (e ConfirmedOrderV1) Summary() string {
	return fmt.Sprintf("%s confirmed, ready in %d min", e.Restaurant, e.ReadyInMinutes)
}

// ProducedOnAttempt returns the attempt on which the restaurant confirmed.
func (e ConfirmedOrderV1) ProducedOnAttempt() int { return e.Attempt }

// ConfirmationFailedV1 is the data of a [ConfirmationFailed] event,
// version 1.
type ConfirmationFailedV1 struct {
	OrderID     string `json:"order_id"`
	Customer    string `json:"customer"`
	Restaurant  string `json:"restaurant"`
	AmountCents int64  `json:"amount_cents"`
	ChargeID    string `json:"charge_id"`
	// Reason is the error of the last attempt.
	Reason string `json:"reason"`
	// Rejected is true when the restaurant refused the order, false when
	// it did not answer on any attempt.
	Rejected bool `json:"rejected"`
	// Attempt is the attempt that failed for good.
	Attempt int `json:"attempt"`
}

// OrderRef returns the order id; it makes ConfirmationFailedV1 an
// [order.StepEvent] and a [payment.RefundCause].
func (e ConfirmationFailedV1) OrderRef() string { return e.OrderID }

// Summary describes the failure, as "napoli rejected the order: ...".
func (e ConfirmationFailedV1) Summary() string {
	if e.Rejected {
		return fmt.Sprintf("%s: %s", e.Restaurant, e.Reason)
	}
	return fmt.Sprintf("%s gave no answer in %d attempts: %s", e.Restaurant, e.Attempt, e.Reason)
}

// ProducedOnAttempt returns the attempt that failed for good.
func (e ConfirmationFailedV1) ProducedOnAttempt() int { return e.Attempt }

// RefundReason says why the order is refunded; it makes
// ConfirmationFailedV1 a [payment.RefundCause].
func (e ConfirmationFailedV1) RefundReason() string {
	if e.Rejected {
		return "the restaurant could not take the order"
	}
	return "the restaurant did not answer"
}
