// Package orders is the orders service of the shop: it takes orders over
// HTTP, publishes [Placed] for each, and keeps a read model of every order's
// progress that it builds from the events of the later steps.
//
// Routes:
//
//	POST /orders       place an order: {"customer":"ada","items":[{"sku":"book","qty":2}]};
//	                   an Idempotency-Key header makes a retry safe
//	GET  /orders/{id}  an order, its status, why it was cancelled, and the events of its transaction
//	GET  /orders       how many orders there are, by status, how many are terminal and how many
//	                   stuck, what they are worth, and the newest 100
//
// The read model is stored in the service's database (see the store
// package), in the same transaction as the event an accepted order
// publishes, so a restart forgets nothing: GET /orders/{id} answers after
// a kill -9 exactly as before it.
package orders

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
)

// ServiceName is the orders service's name in the app and on --services.
const ServiceName = "orders"

// StepEvent is implemented by the data of every event that moves an order
// along. It lets the orders service follow topics that other packages
// declare without importing them.
type StepEvent interface {
	// OrderRef returns the id of the order the event belongs to.
	OrderRef() string
	// Summary says in a few words what happened, for the order's timeline.
	Summary() string
}

// Failure is implemented by the data of the events that turn an order off
// its success path (a declined card, stock run out). The first such event
// an order hears gives the order its reason, shown by GET /orders/{id}.
type Failure interface {
	FailureReason() string
}

// Step tells the orders service that the events of one topic move an order
// to a status. Make one with [Track] or [TrackWith] and pass it to
// [Register].
type Step struct {
	subscribe func(svc *troupe.Service, rm *readModel)
}

// Track returns the [Step] that moves an order to status to whenever an
// event of t arrives. It panics if to is not one of the Status constants,
// as that is a mistake in the program, not in its input.
//
// The steps are passed in rather than imported because the later services
// import this package for [Placed]; if this package imported theirs, Go would
// reject the import cycle.
func Track[T StepEvent](t *troupe.Topic[T], to Status) Step {
	if _, ok := statusRank[to]; !ok {
		panic(fmt.Sprintf("orders.Track(%s): unknown status %q", t.Name(), to))
	}
	return TrackWith(t, func(T) Status { return to })
}

// TrackWith is [Track] for a topic whose events end orders in different
// statuses: status says which, per event. An event for which it returns a
// status that is not one of the constants is dead-lettered.
func TrackWith[T StepEvent](t *troupe.Topic[T], status func(T) Status) Step {
	return Step{subscribe: func(svc *troupe.Service, rm *readModel) { follow(svc, rm, t, status, nil) }}
}

// follow subscribes svc to t, applying each event to the read model.
// details, when not nil, returns what the event says about the order itself.
//
// The subscription needs no inbox of its own: the timeline's primary key
// (order, event id) is one, and the event and its status change commit in
// one transaction, so a redelivery changes nothing.
func follow[T StepEvent](svc *troupe.Service, rm *readModel, t *troupe.Topic[T], status func(T) Status, details func(T) *PlacedV1) {
	troupe.Subscribe(svc, t, "track-"+t.Name(), func(ctx context.Context, ev troupe.Event[T]) error {
		to := status(ev.Data)
		if _, ok := statusRank[to]; !ok {
			return troupe.Permanent(fmt.Errorf("orders: %s moves order %s to unknown status %q", t.Name(), ev.Data.OrderRef(), to))
		}
		var placed *PlacedV1
		if details != nil {
			placed = details(ev.Data)
		}
		reason := ""
		if f, ok := any(ev.Data).(Failure); ok {
			reason = f.FailureReason()
		}
		return rm.apply(ctx, ev.Data.OrderRef(), timelineEvent(ev.Envelope, to, ev.Data.Summary()), placed, reason, ev.Attempt)
	})
}

func timelineEvent(env troupe.Envelope, to Status, summary string) TimelineEvent {
	return TimelineEvent{
		Type: env.Type, ID: env.ID, CausationID: env.CausationID, CorrelationID: env.CorrelationID,
		Source: env.Source, Time: env.Time, Status: to, Summary: summary,
	}
}

// Register declares the orders service on app: it publishes [Placed],
// serves the routes listed in the package doc, and follows its own topic and
// the given steps to keep each order's status and timeline. Its state lives
// in the database db says (opened when the app starts, in the process that
// runs the service). log receives one line per order placed; nil means the
// app's logger.
func Register(app *troupe.App, log *slog.Logger, db *store.DB, steps ...Step) *troupe.Service {
	if log == nil {
		log = app.Logger()
	}
	rm := &readModel{ob: store.Outbox(app, db, ServiceName, schema...)}
	svc := app.Service(ServiceName).Publishes(Placed)
	// The service hears its own event too: the timeline wants the id troupe
	// gave the event.
	follow(svc, rm, Placed, func(PlacedV1) Status { return StatusPlaced }, func(p PlacedV1) *PlacedV1 { return &p })
	for _, s := range steps {
		s.subscribe(svc, rm)
	}
	a := &api{log: log, rm: rm}
	svc.HandleFunc("POST /orders", a.place)
	svc.HandleFunc("GET /orders", a.list)
	svc.HandleFunc("/orders", httpjson.Fallback("/orders", "GET", "POST"))
	svc.HandleFunc("GET /orders/{id}", a.get)
	svc.HandleFunc("/orders/{id}", httpjson.Fallback("/orders/{id}", "GET"))
	return svc
}
