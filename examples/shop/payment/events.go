package payment

import (
	"fmt"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/orders"
)

// Succeeded is published once an order has been paid for. The inventory
// service reserves its items.
var Succeeded = troupe.NewTopic[SucceededV1]("payment_succeeded", 1)

// SucceededV1 is the data of a [Succeeded] event, version 1. It passes on
// what the order's later steps need, so they need not ask the orders
// service.
type SucceededV1 struct {
	OrderID  string        `json:"order_id"`
	Customer string        `json:"customer"`
	Lines    []orders.Line `json:"lines"`
	// Amount is what was charged.
	Amount orders.Money `json:"amount"`
	// ChargeID is the payment provider's reference of the charge.
	ChargeID string `json:"charge_id"`
}

// OrderRef returns the order id; it makes SucceededV1 an [orders.StepEvent].
func (e SucceededV1) OrderRef() string { return e.OrderID }

// Summary describes the payment, as "charged 24.00 EUR (ch_1a2b3c4d5e6f)".
func (e SucceededV1) Summary() string { return fmt.Sprintf("charged %s (%s)", e.Amount, e.ChargeID) }

// Declined is published when the provider declines an order's card.
// Nothing was charged; the notification service tells the customer, and
// the order ends cancelled.
var Declined = troupe.NewTopic[DeclinedV1]("payment_declined", 1)

// DeclinedV1 is the data of a [Declined] event, version 1.
type DeclinedV1 struct {
	OrderID  string       `json:"order_id"`
	Customer string       `json:"customer"`
	Amount   orders.Money `json:"amount"`
	// Reason is the provider's, for the customer.
	Reason string `json:"reason"`
}

// OrderRef returns the order id; it makes DeclinedV1 an [orders.StepEvent].
func (e DeclinedV1) OrderRef() string { return e.OrderID }

// Summary describes the decline, as "payment declined: the card was declined".
func (e DeclinedV1) Summary() string { return "payment declined: " + e.Reason }

// FailureReason makes DeclinedV1 an [orders.Failure].
func (e DeclinedV1) FailureReason() string { return e.Summary() }

// Failed is the payment service's declared compensation for a charge that
// failed for good (every attempt failed, or the last one died with its
// process): troupe publishes it instead of dead-lettering the
// order_placed event. The provider may have taken the money before it
// failed to answer, so the payment service refunds whatever it took.
var Failed = troupe.NewTopic[FailedV1]("payment_failed", 1)

// FailedV1 is the data of a [Failed] event, version 1.
type FailedV1 struct {
	OrderID  string       `json:"order_id"`
	Customer string       `json:"customer"`
	Amount   orders.Money `json:"amount"`
	// Reason is the last attempt's error.
	Reason string `json:"reason"`
	// Attempts is how many attempts were made.
	Attempts int `json:"attempts"`
}

// OrderRef returns the order id; it makes FailedV1 an [orders.StepEvent].
func (e FailedV1) OrderRef() string { return e.OrderID }

// CustomerRef returns the customer; it makes FailedV1 a [RefundCause].
func (e FailedV1) CustomerRef() string { return e.Customer }

// Summary describes the failure.
func (e FailedV1) Summary() string {
	return fmt.Sprintf("payment failed after %d attempt(s): %s", e.Attempts, e.Reason)
}

// FailureReason makes FailedV1 an [orders.Failure] and a [RefundCause].
func (e FailedV1) FailureReason() string { return e.Summary() }

// Refunded is published once the payment service has given back what an
// order that cannot go on was charged (nothing, when no charge went
// through). The notification service tells the customer; the order ends
// cancelled.
var Refunded = troupe.NewTopic[RefundedV1]("payment_refunded", 1)

// RefundedV1 is the data of a [Refunded] event, version 1.
type RefundedV1 struct {
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
	// Amount is what was given back: what the provider had charged.
	Amount orders.Money `json:"amount"`
	// RefundID is the provider's reference of the refund; empty when
	// nothing was charged.
	RefundID string `json:"refund_id,omitempty"`
	// Reason is why the order could not go on, from the event that asked
	// for the refund.
	Reason string `json:"reason"`
}

// OrderRef returns the order id; it makes RefundedV1 an [orders.StepEvent].
func (e RefundedV1) OrderRef() string { return e.OrderID }

// Summary describes the refund, as "refunded 12.00 EUR (re_1a2b3c4d)".
func (e RefundedV1) Summary() string {
	if e.RefundID == "" {
		return "nothing to refund: no charge went through"
	}
	return fmt.Sprintf("refunded %s (%s)", e.Amount, e.RefundID)
}
