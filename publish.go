package troupe

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/troupe-go/troupe/transport"
)

// scope is what a context carries for Publish: the app, and inside a handler
// the event being handled.
type scope struct {
	app         *App
	service     *Service // nil outside a service's handler or route
	sub         *Subscription
	ev          *Envelope // the triggering event, inside a handler
	correlation string    // set by WithCorrelationID outside a handler
	idemKey     string    // set by WithIdempotencyKey outside a handler
	salt        string    // keeps derived ids of a compensation apart from the handler's

	mu      sync.Mutex
	counter map[string]int // per topic, for deterministic ids
}

type scopeKey struct{}

func withScope(ctx context.Context, s *scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

func scopeOf(ctx context.Context) *scope {
	s, _ := ctx.Value(scopeKey{}).(*scope)
	return s
}

// WithCorrelationID returns a context whose publishes start (or join) the
// business transaction id. Use it at the edge, for example with an order id,
// so that the whole flow of an order shares that id. Inside a handler the
// correlation id is inherited from the event and this has no effect.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	s := scopeOf(ctx)
	if s == nil {
		return withScope(ctx, &scope{correlation: id})
	}
	if s.ev != nil {
		return ctx
	}
	c := &scope{app: s.app, service: s.service, correlation: id, idemKey: s.idemKey}
	return withScope(ctx, c)
}

// WithIdempotencyKey returns a context whose publishes get ids derived from
// key (with the topic and the publish's position), as publishes inside a
// handler do from the handled event. Use it at the edge with a key the
// caller repeats when it retries, such as an HTTP Idempotency-Key header or
// an order id: a Publish that failed may still have reached the broker (a
// timeout after the broker stored it, a reconnect that flushed it), and
// publishing again with the same key lets brokers that deduplicate (NATS,
// within its dedup window) drop the second copy, and gives consumers the
// same event id to recognize. Inside a handler it has no effect.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	s := scopeOf(ctx)
	if s == nil {
		return withScope(ctx, &scope{idemKey: key})
	}
	if s.ev != nil {
		return ctx
	}
	return withScope(ctx, &scope{app: s.app, service: s.service, correlation: s.correlation, idemKey: key})
}

// CorrelationID returns the business transaction id of ctx: the handled
// event's inside a handler, the one set by WithCorrelationID otherwise, or "".
func CorrelationID(ctx context.Context) string {
	s := scopeOf(ctx)
	switch {
	case s == nil:
		return ""
	case s.ev != nil:
		return s.ev.CorrelationID
	}
	return s.correlation
}

// Publish publishes one event and returns once the broker has stored it
// durably. ctx must carry the app: it does inside a handler and inside a
// service's HTTP route; elsewhere pass app.Context(ctx).
//
// Inside a handler the event joins the handled event's business transaction:
// it gets the same correlation id, the handled event's id as causation id,
// and an id derived from the handled event, the subscription, the topic and
// the publish's position, so a retried handler publishes the same ids and
// the broker drops the copies within its dedup window.
//
// It fails with [ErrNoApp], [ErrUndeclaredTopic], [ErrEncode] or
// [ErrTooLarge], and then nothing is published; or with the broker's error,
// wrapped. A broker error does not always mean the event was lost: a
// timeout can come after the broker stored it, and a client that was
// reconnecting may still deliver it. Publishing again is the safe answer;
// outside a handler, pair it with [WithIdempotencyKey] so the copy has the
// same id.
func Publish[T any](ctx context.Context, t *Topic[T], v T) error {
	return PublishBatch(ctx, t, []T{v})
}

// PublishBatch publishes several events of one topic, pipelined, and returns
// once the broker has stored all of them. Each event is otherwise as with
// [Publish]. If any value cannot be encoded, nothing is published; if the
// broker fails midway, some may have been stored, and publishing the batch
// again inside a handler does not duplicate them within the dedup window.
func PublishBatch[T any](ctx context.Context, t *Topic[T], vs []T) error {
	a, msgs, err := encode(ctx, t, vs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	return a.publish(ctx, msgs)
}

// Encode returns the events [PublishBatch] would publish for vs in ctx,
// with the same ids, correlation and causation, without publishing them.
// It is for components that store events and publish them later, such as a
// transactional outbox; they publish with [App.PublishMessages]. It fails
// as PublishBatch does before anything reaches the broker.
func Encode[T any](ctx context.Context, t *Topic[T], vs ...T) ([]*transport.Message, error) {
	_, msgs, err := encode(ctx, t, vs)
	return msgs, err
}

func encode[T any](ctx context.Context, t *Topic[T], vs []T) (*App, []*transport.Message, error) {
	s := scopeOf(ctx)
	if s == nil || s.app == nil {
		return nil, nil, fmt.Errorf("publish %s: %w", t.Type(), ErrNoApp)
	}
	a := s.app
	if t.err != nil {
		return nil, nil, fmt.Errorf("publish: %w", t.err)
	}
	if err := a.checkPublish(s, t.info()); err != nil {
		return nil, nil, err
	}
	msgs := make([]*transport.Message, len(vs))
	now := time.Now().UTC()
	for i, v := range vs {
		data, err := t.encode(v)
		if err != nil {
			return nil, nil, err
		}
		m := &transport.Message{
			Type: t.Type(), Source: s.source(), Time: now,
			DataContentType: transport.ContentTypeJSON, Data: data,
		}
		if k := t.OrderingKey(v); k != "" {
			m.Extensions = map[string]string{transport.PartitionKey: k}
		}
		s.stamp(m, t.name)
		msgs[i] = m
	}
	if ls := a.live.Load(); ls != nil { // checkPublish saw it set
		for _, h := range ls.encode {
			h(ctx, msgs)
		}
	}
	return a, msgs, nil
}

// PublishMessages publishes events prepared with [Encode], through the
// app's middlewares, and returns once the broker has stored them all. It
// fails with [ErrNotStarted] before Start, and otherwise as the broker does.
func (a *App) PublishMessages(ctx context.Context, msgs ...*transport.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	return a.publish(ctx, msgs)
}

// Handling is the handling of one event that a context belongs to: the
// subscription and the event being handled. Publish middlewares read it
// with [HandlingOf] to learn which handling made a publish.
type Handling struct {
	// Subscription is the subscription whose handler runs.
	Subscription *Subscription
	// Event is the envelope of the event being handled: its id,
	// correlation, attempt and replays; Event.Subscription names the
	// subscription as "service.name".
	Event Envelope
	// Compensating reports the publish of the subscription's [OnFailure]
	// event, after its handler failed for good.
	Compensating bool
}

// HandlingOf returns the handling ctx belongs to: inside a handler, and in
// what it calls (Publish, and so the Publish middlewares), the subscription
// and the event it handles. ok is false outside a handler (an HTTP route, a
// script, app.Context).
func HandlingOf(ctx context.Context) (h Handling, ok bool) {
	s := scopeOf(ctx)
	if s == nil || s.sub == nil || s.ev == nil {
		return Handling{}, false
	}
	return Handling{Subscription: s.sub, Event: *s.ev, Compensating: s.salt != ""}, true
}

// FromContext returns the app ctx carries (inside a handler, an HTTP route,
// or a context from [App.Context]), or nil.
func FromContext(ctx context.Context) *App {
	if s := scopeOf(ctx); s != nil {
		return s.app
	}
	return nil
}

// source is the ce-source of events published in this scope.
func (s *scope) source() string {
	if s.service != nil {
		return transport.Source(s.app.cfg.Name, s.service.name)
	}
	return s.app.sourceBase
}

// stamp sets the id, correlation and causation of a message published in this
// scope.
func (s *scope) stamp(m *transport.Message, topic string) {
	if s.ev == nil {
		if s.idemKey != "" {
			m.ID = uuid.NewSHA1(eventIDSpace, []byte("key\x00"+s.idemKey+"\x00"+topic+"\x00"+strconv.Itoa(s.next(topic)))).String()
		} else {
			id, err := uuid.NewV7()
			if err != nil {
				id = uuid.New()
			}
			m.ID = id.String()
		}
		m.CorrelationID = s.correlation
		if m.CorrelationID == "" {
			m.CorrelationID = m.ID
		}
		return
	}
	m.ID = uuid.NewSHA1(eventIDSpace, []byte(s.ev.ID+"\x00"+s.sub.String()+s.salt+"\x00"+topic+"\x00"+strconv.Itoa(s.next(topic)))).String()
	m.CorrelationID = s.ev.CorrelationID
	m.CausationID = s.ev.ID
	m.TraceParent = s.ev.TraceParent
}

// next returns the position of the next publish to topic in this scope.
func (s *scope) next(topic string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counter == nil {
		s.counter = make(map[string]int)
	}
	n := s.counter[topic]
	s.counter[topic] = n + 1
	return n
}

// eventIDSpace is the UUID namespace of ids derived from a triggering event.
var eventIDSpace = uuid.MustParse("5b0c4cbe-5f0c-4a52-9a3e-7d1f3b1c9e11")
