package troupe

import (
	"context"
	"flag"
	"net/http"
	"slices"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// PublishFunc publishes encoded events; see [Middleware].
type PublishFunc func(ctx context.Context, msgs []*transport.Message) error

// SettledFunc is told what became of one attempt; see [Middleware].
type SettledFunc func(ctx context.Context, s Settlement)

// Outcome names what became of one attempt at handling an event. The same
// names are used everywhere: logs, the journal, metrics, traces, the
// dashboard and troupetest.
type Outcome = transport.Kind

// Outcomes of an attempt.
const (
	// Handled: the handler succeeded; the event is acknowledged.
	Handled = transport.KindHandled
	// Retried: the handler failed and attempts are left; the event comes
	// back after Settlement.Delay.
	Retried = transport.KindRetried
	// DeadLettered: the handler failed for good (a permanent error, the
	// last attempt, an event that could not be decoded, or one abandoned by
	// a consumer that died) and the event went to the subscription's dead
	// letters.
	DeadLettered = transport.KindDeadLettered
	// Compensated: the handler failed for good and the subscription's
	// [OnFailure] event was published; the event is acknowledged.
	Compensated = transport.KindCompensated
	// Interrupted: the attempt was cut off (the consumer stopped hard, or
	// lost its connection to the broker); the event is delivered again.
	Interrupted = transport.KindInterrupted
)

// Settlement is what became of one attempt at handling an event, decided
// once and told to every [Middleware.Settled].
type Settlement struct {
	// Subscription handled the event.
	Subscription *Subscription
	// Delivery is the attempt: the event's attributes and data, its
	// attempt number and replays. Read it; do not keep it.
	Delivery *transport.Delivery
	// Outcome names what became of it.
	Outcome Outcome
	// Err is the handler's error: nil when handled, the cause when
	// compensated.
	Err error
	// Delay is the wait before the next attempt, when retried.
	Delay time.Duration
	// InPlace reports a retry held in this process (an ordered
	// subscription keeps the later events of the key waiting) rather than
	// handed back to the broker.
	InPlace bool
	// Reason says why the event was dead-lettered.
	Reason transport.Reason
	// Began is when the attempt began; Took how long the Handle chain and
	// the handler ran.
	Began time.Time
	Took  time.Duration
}

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

// HandleHTTP registers an HTTP handler of the app itself (not of one
// service), such as a metrics endpoint or a dashboard. It is served by every
// process of the app that serves HTTP, and its presence makes the app serve
// HTTP on the default address when Config.HTTPAddr is empty. Call it before
// Start.
func (a *App) HandleHTTP(pattern string, h http.Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.routes = append(a.routes, route{pattern: pattern, h: h})
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

// OnStart registers a function that Start runs once the broker is
// connected and subscriptions are declared, before consuming begins, in the
// order registered. An error stops Start, which then returns it. Components
// that run beside the app (an outbox relay, a scheduler) start here; they
// use ctx only for the start itself and should run their background work
// until the matching OnStop. Call it before Start.
func (a *App) OnStart(fn func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onStart = append(a.onStart, fn)
}

// OnStop registers a function that Stop runs after the app's consumers and
// HTTP server have stopped and before the broker connection closes, in the
// reverse order of registration. ctx bounds it with the shutdown timeout.
// Its error is joined into Stop's. The OnStop functions run once Start
// has begun running OnStart functions, even if one of those failed: a
// function must cope with its component not having started.
func (a *App) OnStop(fn func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onStop = append(a.onStop, fn)
}

// OnReady registers a function that Start runs last, once the app
// consumes and its HTTP server listens ([App.HTTPAddr] is known), in the
// order registered: the place to print where the app can be reached. An
// error stops Start, which returns it.
func (a *App) OnReady(fn func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onReady = append(a.onReady, fn)
}

// Stopping returns a channel closed when Stop begins, before the HTTP
// server shuts down and the consumers drain: long-lived work such as an
// event stream to a browser ends on it, so that it does not hold up the
// shutdown.
func (a *App) Stopping() <-chan struct{} { return a.stopCh }

// Flags registers flags of the program's own on the app's standard command
// line ([App.Main], [App.RunCommand]): register defines them on fs, which
// also holds troupe's flags, so they are parsed together, listed together
// by -h, and a bad value is a usage error (exit status 2). Their values are
// set once Main has parsed the command line: read them in [App.OnStart] or
// later. Call it before Main.
func (a *App) Flags(register func(fs *flag.FlagSet)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flagFns = append(a.flagFns, register)
}

// DataDir returns where the embedded broker keeps its files: --data,
// Config.DataDir, $TROUPE_DATA, else ".troupe/<name>". After [App.Main]
// has parsed the command line it includes --data, so components that keep
// files beside the broker's (an SQLite outbox) ask for it in OnStart.
func (a *App) DataDir() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dataDir()
}

// Runs reports whether this process runs the named service: every service
// by default, those of --services (Config.Services) otherwise, none in an
// app started with [App.StartClient]. Like DataDir, ask it once the command
// line is parsed, in OnStart or later.
func (a *App) Runs(service string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.client && (len(a.cfg.Services) == 0 || slices.Contains(a.cfg.Services, service))
}
