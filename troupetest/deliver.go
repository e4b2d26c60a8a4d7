package troupetest

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// Result is what one handled event led to.
type Result struct {
	// Event is the envelope the handler was given.
	Event troupe.Envelope
	// Err is what the handler returned, as the broker would see it: with a
	// deadline note when the subscription's deadline ran out, a panic turned
	// into an error (with its stack), and troupe.ErrMalformed (permanent)
	// when the data did not decode. For a compensated event it is the
	// failure that was compensated.
	Err error
	// Outcome is what became of the attempt, decided by the same pipeline
	// that decides it on a broker.
	Outcome Outcome
	// Published holds what the handler published, in order, with the ids,
	// correlation and causation ids a real delivery gives them. Decode them
	// with [Events].
	Published []Message
}

// Outcome is what became of an attempt, as troupe names it everywhere.
type Outcome = troupe.Outcome

// Outcomes of an attempt, decided as every transport decides them.
const (
	// Ack: the handler succeeded; the event is done (troupe.Handled).
	Ack = troupe.Handled
	// Retry: the handler failed and attempts are left; the event comes back
	// after a backoff (troupe.Retried).
	Retry = troupe.Retried
	// DeadLetter: the error was permanent or this was the last attempt; the
	// event moves to the subscription's dead letters (troupe.DeadLettered).
	DeadLetter = troupe.DeadLettered
	// Compensated: the handler failed for good and the subscription's
	// OnFailure event was published instead (troupe.Compensated).
	Compensated = troupe.Compensated
)

// Option sets a field of the event that [Deliver] or [Handle] hands to the
// handler, or, for [Handle], how the handler is wired.
type Option func(*settings)

type settings struct {
	id, correlation, causation, source, traceParent string
	time                                            time.Time
	attempt, replays                                int

	// Handle only.
	app, subscription string
	publishes         []troupe.AnyTopic
	handleOnly        []string
}

// WithID sets the event's id. Default: a new UUID (version 7), different on
// every call.
func WithID(id string) Option { return func(s *settings) { s.id = id } }

// WithCorrelationID sets the event's business transaction id. Default: the
// event's id, as for the first event of a transaction.
func WithCorrelationID(id string) Option { return func(s *settings) { s.correlation = id } }

// WithCausationID sets the id of the event whose handler published this one.
// Default: none, as for the first event of a transaction.
func WithCausationID(id string) Option { return func(s *settings) { s.causation = id } }

// WithSource sets the event's source. Default "/<app name>", as for an event
// published at the edge of the app.
func WithSource(source string) Option { return func(s *settings) { s.source = source } }

// WithTime sets the event's time. Default: now.
func WithTime(t time.Time) Option { return func(s *settings) { s.time = t } }

// WithTraceParent sets the event's W3C trace context. Default: none.
func WithTraceParent(tp string) Option { return func(s *settings) { s.traceParent = tp } }

// WithAttempt sets which delivery of the event this is, from 1, to test what
// a handler does on a retry and what the broker does after the last attempt
// (see [Result].Outcome). Default 1.
func WithAttempt(n int) Option { return func(s *settings) { s.attempt = n } }

// WithReplays sets how often the event was replayed from dead letters.
// Default 0.
func WithReplays(n int) Option { return func(s *settings) { s.replays = n } }

// As names the subscription "service.name" that [Handle] declares for the
// handler. Derived ids depend on it: give the real name to get the ids the
// real app produces. Default "test.handler". Only for Handle.
func As(subscription string) Option {
	return func(s *settings) { s.subscription = subscription; s.handleOnly = append(s.handleOnly, "As") }
}

// AppName names the app that [Handle] declares; event sources start with
// it. Default "test". Only for Handle.
func AppName(name string) Option {
	return func(s *settings) { s.app = name; s.handleOnly = append(s.handleOnly, "AppName") }
}

// Publishes declares the topics the handler given to [Handle] may publish;
// publishing any other fails with troupe.ErrUndeclaredTopic, as it does in
// an app. Default: none. Only for Handle.
func Publishes(topics ...troupe.AnyTopic) Option {
	return func(s *settings) {
		s.publishes = append(s.publishes, topics...)
		s.handleOnly = append(s.handleOnly, "Publishes")
	}
}

// Deliver hands v to the subscription named "service.name" of app as one
// delivery, waits for its handler, and returns what came of it. No broker is
// involved: app must be built with a [Recorder] as its Config.Transport.
// Deliver starts the app with [Start] if it is not started yet.
//
// The handler runs exactly as the app runs it on a broker: v is encoded to
// JSON and decoded again, the subscription's deadline bounds the call, and
// [troupe.Publish] in the handler gives its events the same ids,
// correlation and causation ids as a real delivery of an event with these
// attributes would, so a test can assert them. Options set the event's
// attributes; each documents its default.
//
// Deliver fails the test when the subscription does not exist, handles
// another type than T, or does not run in this process (Config.Services),
// and when the app does not run on a Recorder. The handler's error is not a
// failure of Deliver: it is in [Result].Err.
func Deliver[T any](t testing.TB, app *troupe.App, subscription string, v T, opts ...Option) Result {
	t.Helper()
	var s settings
	for _, o := range opts {
		o(&s)
	}
	if len(s.handleOnly) > 0 {
		t.Fatalf("troupetest: Deliver: options %s only apply to Handle", strings.Join(s.handleOnly, ", "))
	}
	return deliver(t, app, subscription, v, s)
}

func deliver[T any](t testing.TB, app *troupe.App, subscription string, v T, s settings) Result {
	t.Helper()
	sub := findSubscription(app, subscription)
	if sub == nil {
		t.Fatalf("troupetest: app %s has no subscription %q; it has: %s", app.Name(), subscription, strings.Join(subscriptionNames(app), ", "))
	}
	if want, got := sub.TopicOf().GoType(), reflect.TypeFor[T](); want != got {
		t.Fatalf("troupetest: subscription %s handles %s of type %s, not %s", subscription, sub.Topic(), want, got)
	}
	if app.Transport() == nil {
		Start(t, app)
	}
	rec, ok := app.Transport().(*Recorder)
	if !ok {
		t.Fatalf("troupetest: app %s does not run on a troupetest.Recorder: build it with troupe.Config{Transport: troupetest.NewRecorder()}", app.Name())
	}
	c := rec.consumer(subscription)
	if c == nil {
		t.Fatalf("troupetest: subscription %s is not consumed in this process: is the app stopped, or does Config.Services leave out service %s?", subscription, sub.Service().Name())
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("troupetest: encode %T: %v", v, err)
	}
	d := &transport.Delivery{
		Message: transport.Message{
			ID: s.id, Type: sub.Topic(), Source: s.source, Time: s.time,
			CorrelationID: s.correlation, CausationID: s.causation, TraceParent: s.traceParent,
			DataContentType: transport.ContentTypeJSON, Data: data,
		},
		Subscription: transport.SubscriptionRef{Service: sub.Service().Name(), Name: sub.Name()},
		Attempt:      s.attempt,
		Replays:      s.replays,
	}
	if d.ID == "" {
		d.ID = uuid.Must(uuid.NewV7()).String()
	}
	if d.CorrelationID == "" {
		d.CorrelationID = d.ID
	}
	if d.Source == "" {
		d.Source = "/" + app.Name()
	}
	if d.Time.IsZero() {
		d.Time = time.Now().UTC()
	}
	if d.Attempt <= 0 {
		d.Attempt = 1
	}
	if topic, ok := sub.TopicOf().(*troupe.Topic[T]); ok {
		if k := topic.OrderingKey(v); k != "" {
			d.Extensions = map[string]string{transport.PartitionKey: k}
		}
	}
	capt := &capture{}
	// The delivery takes the path every transport's does, through the one
	// pipeline, without a broker behind it and without holding an ordered
	// subscription's retry in place: a Result is one attempt.
	spec := c.sub
	spec.Ordered = false
	pipe := transport.NewPipeline(spec, c.h, transport.Settler[struct{}](settler{}), transport.PipelineConfig{
		Context: context.WithValue(context.Background(), captureKey{}, capt), Logger: app.Logger(),
	})
	out := pipe.Deliver(struct{}{}, d, nil, d.Time)
	ev := troupe.EnvelopeOf(&d.Message)
	ev.Attempt, ev.Replays, ev.Subscription = d.Attempt, d.Replays, subscription
	return Result{
		Event:     ev,
		Err:       out.Err,
		Outcome:   out.Kind(),
		Published: capt.list(),
	}
}

// Handle runs h on one event carrying v, without a broker and without the
// user's app, and returns what came of it, as [Deliver] does. It declares a
// throwaway app around h: app [AppName] (default "test"), service and
// subscription [As] (default "test.handler"), publishing the topics given
// with [Publishes] (default none; the handler's publishes of any other topic
// fail with troupe.ErrUndeclaredTopic). The app stops when the test ends.
//
// Use Handle for a handler on its own; use Deliver to test a handler as the
// app wires it (its deadline, retries and declared topics).
func Handle[T any](t testing.TB, topic *troupe.Topic[T], h troupe.Handler[T], v T, opts ...Option) Result {
	t.Helper()
	s := settings{app: "test", subscription: "test.handler"}
	for _, o := range opts {
		o(&s)
	}
	svcName, subName, ok := strings.Cut(s.subscription, ".")
	if !ok {
		t.Fatalf("troupetest: As(%q): name the subscription as service.name", s.subscription)
	}
	app := troupe.New(Config(t, troupe.Config{Name: s.app, Transport: NewRecorder()}))
	app.Topics(topic)
	svc := app.Service(svcName).Publishes(s.publishes...)
	troupe.Subscribe(svc, topic, subName, h)
	Start(t, app)
	return deliver(t, app, s.subscription, v, s)
}

func findSubscription(app *troupe.App, name string) *troupe.Subscription {
	for _, svc := range app.Services() {
		for _, sub := range svc.Subscriptions() {
			if sub.String() == name {
				return sub
			}
		}
	}
	return nil
}

func subscriptionNames(app *troupe.App) []string {
	var out []string
	for _, svc := range app.Services() {
		for _, sub := range svc.Subscriptions() {
			out = append(out, sub.String())
		}
	}
	return out
}
