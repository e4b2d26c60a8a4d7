// Package order is the order service of the food-delivery example: it takes
// orders over HTTP, publishes [Placed] for each, and keeps a read model of
// every order (its status and the timeline of its business transaction)
// built from the events of the other services.
//
// Everything it knows is in its database (examples/internal/store: the
// SQLite file order.db in the data directory, or the order_ tables of
// --db's PostgreSQL): an order accepted over HTTP and its order_placed
// event commit together (outbox), each event of the other services is
// applied once (inbox), and a restarted process answers every GET as
// before. The Idempotency-Keys of POST /orders are stored there too.
//
// Routes:
//
//	POST /orders       place an order: {"customer":"ada","restaurant":"napoli","items":[{"name":"margherita","qty":2,"price_cents":950}]}
//	GET  /orders/{id}  an order, its status and its timeline
//	GET  /orders       totals by status and money, and the newest orders (?status=S&limit=N)
//	GET  /             the routes to try
package order

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the order service's name in the app and on --services.
const ServiceName = "order"

// Step tells the order service that the events of one topic move an order
// to a status. Make one with [Track] and pass it to [Register].
type Step struct {
	subscribe func(svc *troupe.Service, rm *readModel)
}

// Track returns the [Step] that moves an order to status to when an event
// of t arrives. It panics if to is not one of the Status constants: that is
// a mistake in the program, not in its input.
//
// The steps are passed in rather than imported because the other services
// import this package for [Placed]; importing theirs here would be a cycle.
func Track[T StepEvent](t *troupe.Topic[T], to Status) Step {
	if _, ok := rank[to]; !ok {
		panic(fmt.Sprintf("order.Track(%s): unknown status %q", t.Name(), to))
	}
	return Step{subscribe: func(svc *troupe.Service, rm *readModel) { follow(svc, rm, t, to, nil) }}
}

// follow subscribes svc to t and applies each event to the read model, in
// the event's inbox transaction. details, when not nil, returns what the
// event says about the order itself.
func follow[T StepEvent](svc *troupe.Service, rm *readModel, t *troupe.Topic[T], to Status, details func(T) *PlacedV1) {
	outbox.Subscribe(svc, t, "track-"+t.Name(), rm.ob, func(ctx context.Context, tx *sql.Tx, ev troupe.Event[T]) error {
		var placed *PlacedV1
		if details != nil {
			placed = details(ev.Data)
		}
		return rm.apply(ctx, tx, ev.Data.OrderRef(), TimelineEvent{
			Type: ev.Type, Service: path.Base(ev.Source), Time: ev.Time, Attempt: ev.Data.ProducedOnAttempt(),
			ID: ev.ID, CausationID: ev.CausationID, CorrelationID: ev.CorrelationID,
			Status: to, Summary: ev.Data.Summary(),
		}, placed)
	})
}

// Register declares the order service on app: it publishes [Placed], serves
// the routes listed in the package doc, and follows its own topic and the
// given steps to keep each order's status and timeline, in db (opened
// when the app starts, where the service runs). log gets one line per
// order placed; nil means slog.Default().
func Register(app *troupe.App, log *slog.Logger, db *store.DB, steps ...Step) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	rm := &readModel{ob: store.Outbox(app, db, ServiceName, schema...)}
	svc := app.Service(ServiceName).Publishes(Placed)
	// The service hears its own event too: the timeline wants the id the
	// event got, and the order's own events come to it as the others do.
	follow(svc, rm, Placed, StatusPlaced, func(p PlacedV1) *PlacedV1 { return &p })
	for _, s := range steps {
		s.subscribe(svc, rm)
	}
	h := &handlers{log: log, rm: rm}
	svc.HandleFunc("POST /orders", h.place)
	svc.HandleFunc("GET /orders", h.list)
	svc.HandleFunc("GET /orders/{id}", h.get)
	svc.HandleFunc("/orders", httpjson.Fallback("/orders", "GET", "POST"))
	svc.HandleFunc("/orders/", httpjson.Fallback("/orders/{id}", "GET"))
	svc.HandleFunc("/", h.index)
	return svc
}
