// Package notification is the notification service of the food-delivery
// example. It tells customers what became of their orders: confirmed by
// the restaurant, picked up by a courier, or cancelled and then refunded.
//
// The messages go out through the messenger (examples/internal/messenger),
// an outside mail provider with a record of its own (messenger.db in the
// data directory, or the messenger_ table of --db's PostgreSQL). Each
// request carries the idempotency key "<order id>/<kind>", so a customer
// gets each message once, however often its event arrives and whenever
// the process dies: a repeated request sends nothing and is counted.
//
// Route:
//
//	GET /notifications?order=ID         the messages about one order
//	GET /notifications?customer=NAME    the messages to one customer
package notification

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/deliverypartner"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/api"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/messenger"
	"github.com/troupe-go/troupe/examples/internal/store"
)

// ServiceName is the notification service's name in the app and on
// --services.
const ServiceName = "notification"

// Kind says what a message tells the customer.
type Kind string

// The kinds of message.
const (
	KindConfirmed Kind = "confirmed" // the restaurant accepted the order
	KindCourier   Kind = "courier"   // a courier will bring it
	KindCancelled Kind = "cancelled" // the restaurant could not take it
	KindRefunded  Kind = "refunded"  // the charge was reversed
)

// Message is one message sent to a customer.
type Message struct {
	// ID is the messenger's id of the message.
	ID       string    `json:"id"`
	OrderID  string    `json:"order_id"`
	Customer string    `json:"customer"`
	Kind     Kind      `json:"kind"`
	Channel  string    `json:"channel"`
	Text     string    `json:"text"`
	SentAt   time.Time `json:"sent_at"`
	// Repeats counts later requests to send it (redeliveries, retries
	// after a crash), which sent nothing.
	Repeats int `json:"repeats"`
}

// Sent is the body of GET /notifications.
type Sent struct {
	Count    int       `json:"count"`
	Messages []Message `json:"messages"`
	// Suppressed counts requests that would have repeated a message
	// already sent, over all orders: the messenger's repeated requests.
	Suppressed int `json:"suppressed"`
	// AllByKind counts every message sent, over all orders, by kind.
	AllByKind map[Kind]int `json:"all_by_kind"`
	// SentTwice counts customers told the same thing about the same order
	// twice, over all orders. It is 0 unless the keys are wrong.
	SentTwice int `json:"sent_twice"`
}

// notifier sends the messages through the messenger.
type notifier struct {
	log *slog.Logger
	m   *messenger.Messenger
}

// Register declares the notification service on app, with the messenger's
// record in db (opened when the app starts, where the service runs). log
// gets one line per message; nil means slog.Default().
func Register(app *troupe.App, log *slog.Logger, db *store.DB) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	n := &notifier{log: log, m: messenger.Declare(app, db, ServiceName)}
	svc := app.Service(ServiceName)
	troupe.Subscribe(svc, restaurant.ConfirmedOrder, "tell-confirmed", func(ctx context.Context, ev troupe.Event[restaurant.ConfirmedOrderV1]) error {
		o := ev.Data
		return n.tell(ctx, o.OrderID, o.Customer, KindConfirmed,
			fmt.Sprintf("Hello %s, %s confirmed your order %s (%s); it will be ready in %d minutes.",
				o.Customer, o.Restaurant, o.OrderID, order.FormatCents(o.AmountCents), o.ReadyInMinutes))
	})
	troupe.Subscribe(svc, deliverypartner.Assigned, "tell-courier", func(ctx context.Context, ev troupe.Event[deliverypartner.AssignedV1]) error {
		o := ev.Data
		return n.tell(ctx, o.OrderID, o.Customer, KindCourier,
			fmt.Sprintf("Hello %s, %s brings your order %s from %s in about %d minutes.", o.Customer, o.Courier, o.OrderID, o.Restaurant, o.ETAMinutes))
	})
	troupe.Subscribe(svc, restaurant.ConfirmationFailed, "tell-cancelled", func(ctx context.Context, ev troupe.Event[restaurant.ConfirmationFailedV1]) error {
		o := ev.Data
		return n.tell(ctx, o.OrderID, o.Customer, KindCancelled,
			fmt.Sprintf("Hello %s, we are sorry: %s could not take your order %s (%s). Your money is on its way back.",
				o.Customer, o.Restaurant, o.OrderID, o.RefundReason()))
	})
	troupe.Subscribe(svc, payment.Reversed, "tell-refunded", func(ctx context.Context, ev troupe.Event[payment.ReversedV1]) error {
		o := ev.Data
		return n.tell(ctx, o.OrderID, o.Customer, KindRefunded,
			fmt.Sprintf("Hello %s, we refunded %s for order %s (refund %s).", o.Customer, order.FormatCents(o.AmountCents), o.OrderID, o.RefundID))
	})
	svc.HandleFunc("GET /notifications", n.serve)
	svc.HandleFunc("/notifications", httpjson.Fallback("/notifications", "GET"))
	return svc
}

// tell sends the message of kind about order id, keyed by both, so that a
// second request for it sends nothing.
func (n *notifier) tell(ctx context.Context, id, customer string, kind Kind, text string) error {
	_, sent, err := n.m.Send(ctx, id+"/"+string(kind), messenger.Message{To: customer, Ref: id, Subject: string(kind), Channel: "email", Text: text})
	if err != nil {
		return err
	}
	if sent {
		n.log.Info(fmt.Sprintf("notification: emailed %s about order %s: %s", customer, id, kind))
	}
	return nil
}

func (n *notifier) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := httpjson.CheckQuery(q, "order", "customer"); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if !q.Has("order") && !q.Has("customer") {
		httpjson.WriteError(w, http.StatusBadRequest, "say whose messages: ?order=ID or ?customer=NAME")
		return
	}
	id, customer := q.Get("order"), q.Get("customer")
	if (q.Has("order") && !api.ValidRef(id)) || (q.Has("customer") && !api.ValidRef(customer)) {
		httpjson.WriteError(w, http.StatusBadRequest, "order and customer are 1 to 100 printable characters")
		return
	}
	out, err := n.sent(r.Context(), q.Has("order"), id, customer)
	if err != nil {
		n.log.Error("notification: could not read the messenger's record", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the notification service cannot read what was sent right now; try again")
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// sent reads the messages about order id (byOrder) or to customer, both
// when both are given, and the totals.
func (n *notifier) sent(ctx context.Context, byOrder bool, id, customer string) (Sent, error) {
	var msgs []messenger.Message
	var err error
	if byOrder {
		msgs, err = n.m.About(ctx, id)
	} else {
		msgs, err = n.m.To(ctx, customer)
	}
	if err != nil {
		return Sent{}, err
	}
	st, err := n.m.Stats(ctx)
	if err != nil {
		return Sent{}, err
	}
	by, err := n.m.BySubject(ctx)
	if err != nil {
		return Sent{}, err
	}
	out := Sent{Messages: []Message{}, Suppressed: st.RepeatedRequests, SentTwice: st.SentTwice, AllByKind: make(map[Kind]int)}
	for s, c := range by {
		out.AllByKind[Kind(s)] = c
	}
	for _, m := range msgs {
		if customer != "" && m.To != customer {
			continue
		}
		out.Messages = append(out.Messages, Message{
			ID: m.ID, OrderID: m.Ref, Customer: m.To, Kind: Kind(m.Subject), Channel: m.Channel, Text: m.Text, SentAt: m.SentAt, Repeats: m.Repeats,
		})
	}
	out.Count = len(out.Messages)
	return out, nil
}
