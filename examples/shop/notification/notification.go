// Package notification is the notification service of the shop: once an
// order ships it tells the customer and publishes [CustomerNotified], the
// last event of an order's fulfilment.
package notification

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/shipping"
)

// CustomerNotified is published once the customer has been told that the
// order is on its way. Nothing in the shop reacts to it but the orders
// service's read model; a loyalty or review service could.
var CustomerNotified = troupe.NewTopic[CustomerNotifiedV1]("customer_notified", 1)

// CustomerNotifiedV1 is the data of a [CustomerNotified] event, version 1.
type CustomerNotifiedV1 struct {
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
	// Channel is how the customer was reached ("email").
	Channel string `json:"channel"`
	// Message is what the customer was told.
	Message string `json:"message"`
}

// OrderRef returns the order id; it makes CustomerNotifiedV1 an
// [orders.StepEvent].
func (e CustomerNotifiedV1) OrderRef() string { return e.OrderID }

// Summary describes the notification, as "email to ada".
func (e CustomerNotifiedV1) Summary() string { return e.Channel + " to " + e.Customer }

// Register declares the notification service on app. log receives one line
// per message sent; nil means the app's logger.
func Register(app *troupe.App, log *slog.Logger) {
	if log == nil {
		log = app.Logger()
	}
	n := &notifier{log: log}
	svc := app.Service("notification").Publishes(CustomerNotified)
	troupe.Subscribe(svc, shipping.Arranged, "tell-customer", n.tell, troupe.Emits(CustomerNotified))
}

// notifier stands in for a mail gateway: it logs the mail instead of
// sending it.
type notifier struct {
	log *slog.Logger
}

// tell is the handler of shipping.Arranged. A redelivered event logs the
// mail again; a real gateway would be called with the event id as its
// idempotency key, so that the customer gets one mail.
func (n *notifier) tell(ctx context.Context, ev troupe.Event[shipping.ArrangedV1]) error {
	o := ev.Data
	msg := fmt.Sprintf("Hello %s, your order %s is on its way with %s, tracking number %s.",
		o.Customer, o.OrderID, o.Carrier, o.TrackingNumber)
	n.log.Info(fmt.Sprintf("notification: emailed %s that order %s is on its way", o.Customer, o.OrderID))
	return troupe.Publish(ctx, CustomerNotified, CustomerNotifiedV1{
		OrderID: o.OrderID, Customer: o.Customer, Channel: "email", Message: msg,
	})
}
