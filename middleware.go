package troupe

import (
	"context"

	"github.com/troupe-go/troupe/transport"
)

// PublishFunc publishes encoded events; see [Middleware].
type PublishFunc func(ctx context.Context, msgs []*transport.Message) error

// SettledFunc is told what became of one attempt; see [Middleware].
type SettledFunc func(ctx context.Context, s Settlement)

// HandleFunc handles one delivery of an event to a subscription: it
// decodes the event, runs the handler and returns its error; see
// [Middleware].
type HandleFunc func(ctx context.Context, d *transport.Delivery) error

// Middleware observes or changes what an app publishes and handles, for
// tracing, metrics, journals and the like. Each field may be nil.
// Middlewares run in the order they were added with [App.Use], the first
// outermost.
type Middleware struct {
	// Name identifies the middleware in logs.
	Name string
	// Publish wraps every publish of the app: the events of one Publish or
	// PublishBatch call, encoded, before they reach the broker. It may set
	// attributes such as TraceParent or Extensions on the messages. The
	// error it returns is what Publish returns.
	Publish func(next PublishFunc) PublishFunc
	// Handle wraps every delivery to sub, before the event is decoded. ctx
	// flows to the handler, so values it adds (a span) are seen by the
	// handler and by what the handler publishes. The error it returns
	// decides the delivery's outcome as the handler's would: nil
	// acknowledges, an error retries or dead-letters. It does not learn
	// the outcome: Settled does.
	Handle func(sub *Subscription, next HandleFunc) HandleFunc
	// Settled is called once per subscription this process consumes, at
	// Start; the function it returns (nil: none) is told what became of
	// every attempt at handling an event of sub, as troupe decided it once
	// for the broker: handled, retried (with the delay), dead-lettered
	// (with the reason), compensated ([OnFailure]) or interrupted (the
	// consumer stopped hard, or lost its connection). Observers (journals,
	// metrics, traces, dashboards) read the outcome here instead of
	// guessing it from the error Handle sees. The function runs on the
	// consumer's goroutine after the Handle chain returned and the broker
	// was told, with the context the handler was given (carrying what
	// Handle middlewares added; it has ended by then): keep it short.
	// Events the transport refuses before any handler sees them
	// (unreadable, oversized, misrouted) are not reported, nor are those a
	// Handle middleware kept from the handler by not calling next.
	Settled func(sub *Subscription) SettledFunc
	// Encode runs on the events of every Publish, PublishBatch, Request
	// and Encode as they are encoded, with the caller's ctx, before any
	// Publish middleware. It may set attributes that belong to the moment
	// the event was written rather than sent: the trace context of the
	// code that wrote an event a transactional outbox publishes later, in
	// another context.
	Encode func(ctx context.Context, msgs []*transport.Message)
}

// Use adds middlewares to the app. Call it before Start; middlewares added
// later are ignored.
func (a *App) Use(mws ...Middleware) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.middleware = append(a.middleware, mws...)
}

// chainPublish returns the app's publish path: the middlewares around the
// transport.
func (a *App) chainPublish(tr transport.Transport, mws []Middleware) PublishFunc {
	f := PublishFunc(func(ctx context.Context, msgs []*transport.Message) error { return tr.Publish(ctx, msgs...) })
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i].Publish != nil {
			f = mws[i].Publish(f)
		}
	}
	return f
}

// settledFuncs returns the Settled functions of the middlewares for sub.
func settledFuncs(sub *Subscription, mws []Middleware) []SettledFunc {
	var out []SettledFunc
	for _, m := range mws {
		if m.Settled != nil {
			if f := m.Settled(sub); f != nil {
				out = append(out, f)
			}
		}
	}
	return out
}

// chainHandle returns sub's delivery path: the middlewares around its
// handler.
func chainHandle(sub *Subscription, mws []Middleware) HandleFunc {
	f := HandleFunc(sub.handler)
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i].Handle != nil {
			f = mws[i].Handle(sub, f)
		}
	}
	return f
}
