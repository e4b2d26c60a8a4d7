// Package notification is the notification service of the food-delivery
// example. It tells customers what became of their orders: confirmed by
// the restaurant, picked up by a courier, or cancelled and then refunded.
// Each message is sent once per order and kind, however often its event
// arrives.
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
	"sync"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/deliverypartner"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/api"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
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
	OrderID  string    `json:"order_id"`
	Customer string    `json:"customer"`
	Kind     Kind      `json:"kind"`
	Channel  string    `json:"channel"`
	Text     string    `json:"text"`
	SentAt   time.Time `json:"sent_at"`
	// EventID is the event that caused the message.
	EventID string `json:"event_id"`
}

// Outbox is the body of GET /notifications.
type Outbox struct {
	Count    int       `json:"count"`
	Messages []Message `json:"messages"`
	// Suppressed counts deliveries that would have repeated a message
	// already sent, over all orders.
	Suppressed int `json:"suppressed"`
	// AllByKind counts every message sent, over all orders, by kind.
	AllByKind map[Kind]int `json:"all_by_kind"`
}

// mailer stands in for a mail gateway: it keeps the messages instead of
// sending them, and sends at most one of each kind per order.
type mailer struct {
	log *slog.Logger

	mu         sync.Mutex
	sent       map[string]bool // order id + kind
	messages   []Message
	suppressed int
}

// Register declares the notification service on app. log gets one line per
// message; nil means slog.Default().
func Register(app *troupe.App, log *slog.Logger) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	m := &mailer{log: log, sent: make(map[string]bool)}
	svc := app.Service(ServiceName)
	troupe.Subscribe(svc, restaurant.ConfirmedOrder, "tell-confirmed", func(_ context.Context, ev troupe.Event[restaurant.ConfirmedOrderV1]) error {
		o := ev.Data
		m.send(ev.Envelope, o.OrderID, o.Customer, KindConfirmed,
			fmt.Sprintf("Hello %s, %s confirmed your order %s (%s); it will be ready in %d minutes.",
				o.Customer, o.Restaurant, o.OrderID, order.FormatCents(o.AmountCents), o.ReadyInMinutes))
		return nil
	})
	troupe.Subscribe(svc, deliverypartner.Assigned, "tell-courier", func(_ context.Context, ev troupe.Event[deliverypartner.AssignedV1]) error {
		o := ev.Data
		m.send(ev.Envelope, o.OrderID, o.Customer, KindCourier,
			fmt.Sprintf("Hello %s, %s brings your order %s from %s in about %d minutes.", o.Customer, o.Courier, o.OrderID, o.Restaurant, o.ETAMinutes))
		return nil
	})
	troupe.Subscribe(svc, restaurant.ConfirmationFailed, "tell-cancelled", func(_ context.Context, ev troupe.Event[restaurant.ConfirmationFailedV1]) error {
		o := ev.Data
		m.send(ev.Envelope, o.OrderID, o.Customer, KindCancelled,
			fmt.Sprintf("Hello %s, we are sorry: %s could not take your order %s (%s). Your money is on its way back.",
				o.Customer, o.Restaurant, o.OrderID, o.RefundReason()))
		return nil
	})
	troupe.Subscribe(svc, payment.Reversed, "tell-refunded", func(_ context.Context, ev troupe.Event[payment.ReversedV1]) error {
		o := ev.Data
		m.send(ev.Envelope, o.OrderID, o.Customer, KindRefunded,
			fmt.Sprintf("Hello %s, we refunded %s for order %s (refund %s).", o.Customer, order.FormatCents(o.AmountCents), o.OrderID, o.RefundID))
		return nil
	})
	svc.HandleFunc("GET /notifications", m.serve)
	svc.HandleFunc("/notifications", httpjson.Fallback("/notifications", "GET"))
	return svc
}

// send sends the message of kind about order id, unless it was sent before.
func (m *mailer) send(env troupe.Envelope, id, customer string, kind Kind, text string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := id + "\x00" + string(kind)
	if m.sent[key] {
		m.suppressed++
		return
	}
	m.sent[key] = true
	m.messages = append(m.messages, Message{
		OrderID: id, Customer: customer, Kind: kind, Channel: "email", Text: text, SentAt: time.Now().UTC(), EventID: env.ID,
	})
	m.log.Info(fmt.Sprintf("notification: emailed %s about order %s: %s", customer, id, kind))
}

func (m *mailer) serve(w http.ResponseWriter, r *http.Request) {
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
	m.mu.Lock()
	out := Outbox{Messages: []Message{}, Suppressed: m.suppressed, AllByKind: make(map[Kind]int)}
	for _, msg := range m.messages {
		out.AllByKind[msg.Kind]++
		if (id == "" || msg.OrderID == id) && (customer == "" || msg.Customer == customer) {
			out.Messages = append(out.Messages, msg)
		}
	}
	m.mu.Unlock()
	out.Count = len(out.Messages)
	httpjson.WriteJSON(w, http.StatusOK, out)
}
