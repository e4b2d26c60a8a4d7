// Package notification is the notification service of the shop: it tells
// the customer how each order ended, through the messenger package's
// simulated mail provider, and publishes [CustomerNotified], the last event
// of every order: that it is on its way (after shipping_arranged), or that
// it is cancelled (after payment_declined or payment_refunded).
//
// Each message goes with the idempotency key "<order>/<subject>", so no
// retry, redelivery or crash tells a customer the same thing twice; GET
// /notifications shows the provider's count of messages and of messages
// sent twice.
//
// Routes:
//
//	GET /notifications            the provider's counts: messages, repeated requests, sent twice
//	GET /notifications?order=ID   the messages about one order
package notification

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/messenger"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/shop/payment"
	"github.com/troupe-go/troupe/examples/shop/shipping"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the notification service's name in the app and on
// --services.
const ServiceName = "notification"

// What a message tells the customer about an order: its Subject.
const (
	SubjectShipped   = "shipped"
	SubjectCancelled = "cancelled"
)

// CustomerNotified is published once the customer has been told how an
// order ended. Nothing in the shop reacts to it but the orders service's
// read model; a loyalty or review service could.
var CustomerNotified = troupe.NewTopic[CustomerNotifiedV1]("customer_notified", 1)

// CustomerNotifiedV1 is the data of a [CustomerNotified] event, version 1.
type CustomerNotifiedV1 struct {
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
	// Subject is what the customer was told: [SubjectShipped] or
	// [SubjectCancelled]. Optional, because the events of shops from
	// before cancellations lack it: those all told of a shipment (see
	// [CustomerNotifiedV1.Told]).
	Subject string `json:"subject,omitempty"`
	// Channel is how the customer was reached ("email").
	Channel string `json:"channel"`
	// Message is what the customer was told.
	Message string `json:"message"`
	// MessageID is the provider's reference of the message; empty in
	// events of shops from before the provider kept a record.
	MessageID string `json:"message_id,omitempty"`
}

// Told returns what the customer was told: the Subject, or
// [SubjectShipped] for an event without one.
func (e CustomerNotifiedV1) Told() string {
	if e.Subject == "" {
		return SubjectShipped
	}
	return e.Subject
}

// OrderRef returns the order id; it makes CustomerNotifiedV1 an
// [orders.StepEvent].
func (e CustomerNotifiedV1) OrderRef() string { return e.OrderID }

// Summary describes the notification, as "email to ada: shipped".
func (e CustomerNotifiedV1) Summary() string {
	return e.Channel + " to " + e.Customer + ": " + e.Told()
}

// Register declares the notification service on app, with its database
// from db and the messenger's, opened when the app starts in the process
// that runs the service. log receives one line per message sent; nil
// means the app's logger.
//
// Telling can only fail when a database does (the service's or the
// provider's): the subscriptions retry with backoff, then dead-letter the
// event, where the dlq command replays it; meanwhile GET /orders counts the
// order as stuck. No money waits on it.
func Register(app *troupe.App, log *slog.Logger, db *store.DB) *troupe.Service {
	if log == nil {
		log = app.Logger()
	}
	n := &notifier{log: log, ob: store.Outbox(app, db, ServiceName), m: messenger.Declare(app, db, ServiceName)}
	svc := app.Service(ServiceName).Publishes(CustomerNotified)
	outbox.Subscribe(svc, shipping.Arranged, "tell-shipped", n.ob, n.shipped, troupe.Emits(CustomerNotified))
	outbox.Subscribe(svc, payment.Declined, "tell-declined", n.ob, n.declined, troupe.Emits(CustomerNotified))
	outbox.Subscribe(svc, payment.Refunded, "tell-refunded", n.ob, n.refunded, troupe.Emits(CustomerNotified))
	svc.HandleFunc("GET /notifications", n.serve)
	svc.HandleFunc("/notifications", httpjson.Fallback("/notifications", "GET"))
	return svc
}

// notifier is the notification service: the provider, and the outbox its
// events go through.
type notifier struct {
	log *slog.Logger
	ob  *outbox.Outbox
	m   *messenger.Messenger
}

func (n *notifier) shipped(ctx context.Context, tx *sql.Tx, ev troupe.Event[shipping.ArrangedV1]) error {
	o := ev.Data
	return n.tell(ctx, tx, o.OrderID, o.Customer, SubjectShipped, fmt.Sprintf("Hello %s, your order %s is on its way with %s, tracking number %s.",
		o.Customer, o.OrderID, o.Carrier, o.TrackingNumber))
}

func (n *notifier) declined(ctx context.Context, tx *sql.Tx, ev troupe.Event[payment.DeclinedV1]) error {
	o := ev.Data
	return n.tell(ctx, tx, o.OrderID, o.Customer, SubjectCancelled, fmt.Sprintf("Hello %s, we are sorry: your order %s is cancelled, %s. You were not charged.",
		o.Customer, o.OrderID, o.Reason))
}

func (n *notifier) refunded(ctx context.Context, tx *sql.Tx, ev troupe.Event[payment.RefundedV1]) error {
	o := ev.Data
	money := "You were not charged."
	if o.RefundID != "" {
		money = fmt.Sprintf("We refunded the %s you paid.", o.Amount)
	}
	return n.tell(ctx, tx, o.OrderID, o.Customer, SubjectCancelled, fmt.Sprintf("Hello %s, we are sorry: your order %s is cancelled (%s). %s",
		o.Customer, o.OrderID, o.Reason, money))
}

// tell sends one message per order and subject and publishes
// CustomerNotified, in the transaction that records the event as handled.
// The provider's record is outside that transaction, as a real one's is:
// a retry after a crash sends the same key, and the provider sends nothing
// twice.
func (n *notifier) tell(ctx context.Context, tx *sql.Tx, orderID, customer, subject, text string) error {
	msg, first, err := n.m.Send(ctx, orderID+"/"+subject, messenger.Message{
		To: customer, Ref: orderID, Subject: subject, Channel: "email", Text: text,
	})
	if err != nil {
		return err
	}
	if first {
		n.log.Info(fmt.Sprintf("notification: emailed %s that order %s is %s", customer, orderID, describe(subject)))
	}
	return outbox.PublishTx(ctx, tx, CustomerNotified, CustomerNotifiedV1{
		OrderID: orderID, Customer: customer, Subject: subject, Channel: msg.Channel, Message: msg.Text, MessageID: msg.ID,
	})
}

func describe(subject string) string {
	if subject == SubjectShipped {
		return "on its way"
	}
	return subject
}

// Messages is the body of GET /notifications?order=ID.
type Messages struct {
	OrderID  string              `json:"order_id"`
	Messages []messenger.Message `json:"messages"`
}

// serve serves GET /notifications and GET /notifications?order=ID.
func (n *notifier) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := httpjson.CheckQuery(q, "order"); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	var body any
	var err error
	if !q.Has("order") {
		body, err = n.m.Stats(r.Context())
	} else {
		id := q.Get("order")
		if id == "" || len(q["order"]) > 1 {
			httpjson.WriteError(w, http.StatusBadRequest, "order must be one order id, as in /notifications?order=b69de227601c")
			return
		}
		var ms []messenger.Message
		ms, err = n.m.About(r.Context(), id)
		body = Messages{OrderID: id, Messages: ms}
	}
	if err != nil {
		n.log.Error("notification: messages", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the mail provider's record does not answer right now; try again")
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, body)
}
