package payment

import (
	"fmt"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
)

// Success is published once an order has been paid for. The restaurant
// confirms (or fails) the order; the order service records the payment.
var Success = troupe.NewTopic[SuccessV1]("payment_success", 1)

// Reversed is published once the charge of an order the restaurant could
// not take has been refunded. The notification service tells the
// customer; the order service closes the order as refunded.
var Reversed = troupe.NewTopic[ReversedV1]("payment_reversed", 1)

// SuccessV1 is the data of a [Success] event, version 1. It passes on what
// the later steps need.
type SuccessV1 struct {
	OrderID    string       `json:"order_id"`
	Customer   string       `json:"customer"`
	Restaurant string       `json:"restaurant"`
	Items      []order.Item `json:"items"`
	// AmountCents is what was charged, in euro cents.
	AmountCents int64 `json:"amount_cents"`
	// ChargeID is the payment gateway's reference of the charge.
	ChargeID string `json:"charge_id"`
	// Attempt is the attempt of the payment handler that published it.
	Attempt int `json:"attempt"`
}

// OrderRef returns the order id; it makes SuccessV1 an [order.StepEvent].
func (e SuccessV1) OrderRef() string { return e.OrderID }

// Summary describes the payment, as "charged 19.00 EUR (ch_1a2b3c)".
func (e SuccessV1) Summary() string {
	return fmt.Sprintf("charged %s (%s)", order.FormatCents(e.AmountCents), e.ChargeID)
}

// ProducedOnAttempt returns the attempt that charged the order.
func (e SuccessV1) ProducedOnAttempt() int { return e.Attempt }

// ReversedV1 is the data of a [Reversed] event, version 1.
type ReversedV1 struct {
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
	// AmountCents is what was refunded: all of the charge.
	AmountCents int64  `json:"amount_cents"`
	ChargeID    string `json:"charge_id"`
	RefundID    string `json:"refund_id"`
	// Reason is why the order was cancelled, as the restaurant said.
	Reason  string `json:"reason"`
	Attempt int    `json:"attempt"`
}

// OrderRef returns the order id; it makes ReversedV1 an [order.StepEvent].
func (e ReversedV1) OrderRef() string { return e.OrderID }

// Summary describes the refund, as "refunded 19.00 EUR (re_1a2b3c)".
func (e ReversedV1) Summary() string {
	return fmt.Sprintf("refunded %s (%s)", order.FormatCents(e.AmountCents), e.RefundID)
}

// ProducedOnAttempt returns the attempt that refunded the order.
func (e ReversedV1) ProducedOnAttempt() int { return e.Attempt }
