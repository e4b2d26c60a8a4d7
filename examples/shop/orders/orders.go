// Package orders is the orders service of the shop: it takes orders over
// HTTP, publishes [Placed] for each, and keeps a read model of every order's
// progress that it builds from the events of the later steps.
//
// Routes:
//
//	POST /orders       place an order: {"customer":"ada","items":[{"sku":"book","qty":2}]}
//	GET  /orders/{id}  an order, its status and the events of its fulfilment so far
//	GET  /orders       how many orders there are, how many reached each status, the newest 100,
//	                   and how many duplicate deliveries the read model ignored
package orders

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/troupe-go/troupe"
)

// StepEvent is implemented by the data of every event that moves an order
// along its fulfilment. It lets the orders service follow topics that other
// packages declare without importing them.
type StepEvent interface {
	// OrderRef returns the id of the order the event belongs to.
	OrderRef() string
	// Summary says in a few words what happened, for the order's timeline.
	Summary() string
}

// Step tells the orders service that the events of one topic move an order
// to a status. Make one with [Track] and pass it to [Register].
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
	return Step{subscribe: func(svc *troupe.Service, rm *readModel) { follow(svc, rm, t, to, nil) }}
}

// follow subscribes svc to t, applying each event to the read model.
// details, when not nil, returns what the event says about the order itself.
func follow[T StepEvent](svc *troupe.Service, rm *readModel, t *troupe.Topic[T], to Status, details func(T) *PlacedV1) {
	troupe.Subscribe(svc, t, "track-"+t.Name(), func(_ context.Context, ev troupe.Event[T]) error {
		var placed *PlacedV1
		if details != nil {
			placed = details(ev.Data)
		}
		rm.apply(ev.Data.OrderRef(), timelineEvent(ev.Envelope, to, ev.Data.Summary()), placed, ev.Attempt)
		return nil
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
// the given steps to keep each order's status and timeline. log receives one
// line per order placed; nil means the app's logger.
func Register(app *troupe.App, log *slog.Logger, steps ...Step) {
	if log == nil {
		log = app.Logger()
	}
	rm := newReadModel()
	svc := app.Service("orders").Publishes(Placed)
	// The service hears its own event too: Publish does not return the id it
	// gave the event, and the timeline wants it.
	follow(svc, rm, Placed, StatusPlaced, func(p PlacedV1) *PlacedV1 { return &p })
	for _, s := range steps {
		s.subscribe(svc, rm)
	}
	a := &api{log: log, rm: rm}
	svc.HandleFunc("POST /orders", a.place)
	svc.HandleFunc("GET /orders/{id}", a.get)
	svc.HandleFunc("GET /orders", a.list)
}
