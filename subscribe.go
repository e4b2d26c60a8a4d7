package troupe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// Handler handles one event. Returning nil acknowledges it. Returning an
// error retries it later with backoff (the broker redelivers it, so a crash
// loses nothing) until the subscription's last attempt, after which it goes
// to the subscription's dead letters. Wrap the error with [Permanent] to skip
// the retries, or with [RetryAfter] to choose the delay. A panic counts as an
// error. ctx ends at the subscription's deadline and carries the event, so
// events published with it join the same business transaction.
//
// A handler may run more than once for one event (at-least-once delivery):
// make its effects idempotent, or key them by ev.ID.
type Handler[T any] func(ctx context.Context, ev Event[T]) error

// Subscription is a declared subscription of a service to a topic.
type Subscription struct {
	service  *Service
	name     string
	topic    topicInfo
	topicRef AnyTopic
	cfg      subscribeConfig
	handler  func(ctx context.Context, d *transport.Delivery) error
	breaker  *breaker      // nil without CircuitBreaker
	settled  []SettledFunc // the middlewares' observers, set at Start
}

// BreakerState returns the state of the subscription's circuit breaker in
// this process; [BreakerClosed] when it has none.
func (s *Subscription) BreakerState() BreakerState {
	if s.breaker == nil {
		return BreakerClosed
	}
	return s.breaker.State()
}

// Name returns the subscription's name within its service.
func (s *Subscription) Name() string { return s.name }

// Service returns the service that owns the subscription.
func (s *Subscription) Service() *Service { return s.service }

// String returns "service.name", the subscription's name in logs, dead
// letters and broker queues.
func (s *Subscription) String() string { return s.service.name + "." + s.name }

// Topic returns the wire type of the topic the subscription handles.
func (s *Subscription) Topic() string { return transport.WireType(s.topic.name, s.topic.version) }

type subscribeConfig struct {
	spec       transport.Subscription
	deadline   time.Duration
	emits      []AnyTopic
	compensate *compensation
	breaker    *breakerConfig
}

// compensation is a subscription's declared failure event.
type compensation struct {
	topic   AnyTopic
	evType  reflect.Type // the T of the Event[T] that build takes
	publish func(ctx context.Context, ev any, cause error) error
}

// SubscriptionConfig is a subscription's tuning after defaults, as the app
// runs it; see the options of the same names.
type SubscriptionConfig struct {
	MaxAttempts            int
	MinBackoff, MaxBackoff time.Duration
	Jitter                 float64
	Deadline               time.Duration
	Lease                  time.Duration
	Concurrency            int
	Prefetch               int
	MaxMessageBytes        int
	StartAtBeginning       bool
	// Ordered reports that the topic has an ordering key ([OrderBy]).
	Ordered bool
}

// Config returns the subscription's tuning with every default filled in.
func (s *Subscription) Config() SubscriptionConfig {
	sp := s.cfg.spec
	return SubscriptionConfig{
		MaxAttempts: sp.Retry.MaxAttempts, MinBackoff: sp.Retry.MinBackoff, MaxBackoff: sp.Retry.MaxBackoff,
		Jitter: max(sp.Retry.Jitter, 0), Deadline: s.cfg.deadline, Lease: sp.Lease, Concurrency: sp.Concurrency,
		Prefetch: sp.Prefetch, MaxMessageBytes: sp.MaxMessageBytes, StartAtBeginning: sp.StartAtBeginning,
		Ordered: s.topicRef.Ordered(),
	}
}

// Emits returns the topics the subscription's handler declares it
// publishes (the [Emits] option).
func (s *Subscription) Emits() []AnyTopic { return append([]AnyTopic(nil), s.cfg.emits...) }

// TopicOf returns the topic the subscription handles.
func (s *Subscription) TopicOf() AnyTopic { return s.topicRef }

// Compensation returns the failure topic declared with [OnFailure], or nil.
func (s *Subscription) Compensation() AnyTopic {
	if s.cfg.compensate == nil {
		return nil
	}
	return s.cfg.compensate.topic
}

// OnFailure declares the subscription's compensation: when its handler
// fails for good (a [Permanent] error, or an error on the last attempt),
// troupe publishes the event build returns to failure, in the same business
// transaction, and acknowledges the failed event instead of dead-lettering
// it, because the failure is now the business's to handle (a refund, a
// cancellation). The failure event's id is derived from the failed event,
// so a redelivery does not publish it twice where the broker deduplicates.
// If publishing it fails, the event is dead-lettered as without OnFailure.
// An event whose last attempt died with its process is compensated too,
// without running the handler again.
// Events that cannot be read (malformed, unknown version) are dead-lettered
// without compensation: there is no value to build from.
//
// The declaration is data: the topology draws the failure path. The
// service must declare failure in its Publishes, and T must be the
// subscription's event type; both are checked at start. Default: none.
func OnFailure[T, F any](failure *Topic[F], build func(ev Event[T], cause error) F) SubscribeOption {
	c := &compensation{topic: failure, evType: reflect.TypeFor[T]()}
	c.publish = func(ctx context.Context, ev any, cause error) error {
		e, ok := ev.(Event[T])
		if !ok {
			return fmt.Errorf("troupe: OnFailure for %s takes Event[%s], got %T", failure.Type(), c.evType, ev)
		}
		return Publish(ctx, failure, build(e, cause))
	}
	return func(cfg *subscribeConfig) { cfg.compensate = c }
}

// DefaultDeadline bounds one attempt of a handler unless [Deadline] says
// otherwise.
const DefaultDeadline = 30 * time.Second

// SubscribeOption tunes a subscription. Each option documents its default.
type SubscribeOption func(*subscribeConfig)

// Emits declares the topics this subscription's handler publishes, so the
// app's topology shows which event leads to which. Publishing a topic that
// is not declared still works but logs a warning once. Default: none
// declared, which the topology shows as a handler that publishes nothing.
func Emits(topics ...AnyTopic) SubscribeOption {
	return func(c *subscribeConfig) { c.emits = append(c.emits, topics...) }
}

// MaxAttempts sets how many times an event is handled before it is
// dead-lettered, counting the first. Default 8; 1 disables retries.
func MaxAttempts(n int) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Retry.MaxAttempts = n }
}

// Backoff sets the delay before the second attempt (min) and the cap (max);
// each further retry doubles the delay. Default 500ms and 1m.
func Backoff(min, max time.Duration) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Retry.MinBackoff, c.spec.Retry.MaxBackoff = min, max }
}

// Jitter spreads each backoff delay by ±fraction (0 to 1) so that retries of
// many events do not arrive together. Default 0.2; 0 means exact delays.
func Jitter(fraction float64) SubscribeOption {
	return func(c *subscribeConfig) {
		if fraction <= 0 {
			fraction = transport.NoJitter
		}
		c.spec.Retry.Jitter = fraction
	}
}

// Deadline bounds one attempt: the handler's context ends after d and the
// attempt counts as failed. Default 30s.
func Deadline(d time.Duration) SubscribeOption {
	return func(c *subscribeConfig) { c.deadline = d }
}

// Concurrency sets how many events of this subscription one process handles
// at once. Default 8. Several processes running the service add up.
func Concurrency(n int) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Concurrency = n }
}

// Prefetch sets how many events a process may hold ready beyond those being
// handled, so handlers never wait for the broker. Held events keep their
// lease, but they are not available to other processes: lower it when
// handlers are slow and several processes share the work. Default 256.
func Prefetch(n int) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Prefetch = n }
}

// Lease sets how long the broker waits before handing an unsettled event to
// another process. It is renewed while the handler runs, so it bounds how
// long the events of a crashed process wait, not how long a handler may take.
// Default 30s.
func Lease(d time.Duration) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Lease = d }
}

// StartAtBeginning makes a new subscription receive the events its topic
// already holds (within the broker's retention) instead of only those
// published after it first started. Default off. It only matters the first
// time the subscription is declared.
func StartAtBeginning() SubscribeOption {
	return func(c *subscribeConfig) { c.spec.StartAtBeginning = true }
}

// MaxMessageBytes sets the largest event this subscription accepts; larger
// ones are dead-lettered unread. Default 1 MiB.
func MaxMessageBytes(n int) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.MaxMessageBytes = n }
}

// Subscribe declares that service s handles every event of topic t with h,
// under a name unique within s ("charge", "send-welcome-mail"). Every
// subscription gets its own copy of each event; processes running the same
// service share the subscription's events. Mistakes (a duplicate name, a
// topic nobody publishes) are reported when the app starts.
func Subscribe[T any](s *Service, t *Topic[T], name string, h Handler[T], opts ...SubscribeOption) *Subscription {
	cfg := subscribeConfig{deadline: DefaultDeadline}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.spec.SubscriptionRef = transport.SubscriptionRef{Service: s.name, Name: name}
	cfg.spec.Topic = t.name
	cfg.spec = cfg.spec.WithDefaults()
	if cfg.deadline <= 0 {
		cfg.deadline = DefaultDeadline
	}
	sub := &Subscription{service: s, name: name, topic: t.info(), topicRef: t, cfg: cfg}
	app := s.app
	ref := sub.String()
	if cfg.breaker != nil {
		sub.breaker = newBreaker(*cfg.breaker, ref, app, app.stopCh)
	}
	sub.handler = func(ctx context.Context, d *transport.Delivery) error {
		a := sub.attempt(ctx, d)
		defer a.end()
		v, err := t.decode(d)
		if err != nil {
			return Permanent(err)
		}
		ev := Event[T]{Data: v, Envelope: deliveryEnvelope(d, ref)}
		a.scope.ev = &ev.Envelope
		if cfg.compensate != nil {
			a.event = ev
		}
		if d.Abandoned != nil {
			// Its last attempt died with its consumer: do not run the
			// handler again (it may be what killed the consumer); a
			// declared compensation settles it (see attemptCtx.Compensate).
			app.log.Error("event abandoned: its consumer died during its last attempt", "subscription", ref,
				"type", ev.Type, "id", ev.ID, "correlation", ev.CorrelationID, "err", d.Abandoned)
			return d.Abandoned
		}
		probe := false
		if sub.breaker != nil {
			if probe, err = sub.breaker.enter(ctx); err != nil {
				return err
			}
			// Deferred, so that a panic (recovered by the pipeline) counts
			// as a failure too.
			err = errPanicked
			defer func() { sub.breaker.done(probe, err, ctx.Err() != nil) }()
		}
		a.arm(cfg.deadline)
		err = h(a, ev)
		if err != nil && errors.Is(a.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("deadline of %s exceeded: %w", cfg.deadline, err)
		}
		return err
	}
	s.subs = append(s.subs, sub)
	return sub
}

// consume returns the handler the app gives the transport for sub: it
// registers the attempt's hooks (see attemptCtx) before the Handle
// middlewares run, so that the outcome is told to the Settled middlewares
// even when a Handle middleware does not call next.
func (sub *Subscription) consume(chain HandleFunc) transport.Handler {
	return func(ctx context.Context, d *transport.Delivery) error {
		d.SetHooks(&attemptCtx{parent: ctx, scope: scope{app: sub.service.app, service: sub.service, sub: sub}})
		return chain(ctx, d)
	}
}

// attempt returns the context of the handler's attempt: the one consume
// registered as the delivery's hooks, now under the context the Handle
// middlewares passed down, or a new one for a handler called another way
// (or twice by a middleware).
func (sub *Subscription) attempt(ctx context.Context, d *transport.Delivery) *attemptCtx {
	a, ok := d.Hooks().(*attemptCtx)
	if !ok || a.scope.sub != sub || a.started {
		a = &attemptCtx{scope: scope{app: sub.service.app, service: sub.service, sub: sub}}
		d.SetHooks(a)
	}
	a.parent, a.started = ctx, true
	return a
}

// errPanicked is what the circuit breaker counts for a handler that
// panicked; the pipeline turns the panic itself into the attempt's error.
var errPanicked = errors.New("handler panicked")

// logSettled logs what became of one attempt, once, as the pipeline
// decided it.
func (a *App) logSettled(sub *Subscription, d *transport.Delivery, o transport.Outcome) {
	ref := sub.String()
	switch o.Kind() {
	case Handled:
		if !a.log.Enabled(context.Background(), slog.LevelDebug) {
			return // skip boxing the attributes on the hot path
		}
		a.log.Debug("handled", "subscription", ref, "type", d.Type, "id", d.ID,
			"correlation", d.CorrelationID, "attempt", d.Attempt, "took", o.Took)
	case Retried:
		a.log.Warn("handler failed", "subscription", ref, "type", d.Type, "id", d.ID, "correlation", d.CorrelationID,
			"attempt", d.Attempt, "of", sub.cfg.spec.Retry.MaxAttempts, "retry_in", o.Delay, "err", o.Err)
	case DeadLettered:
		a.log.Error("handler failed", "subscription", ref, "type", d.Type, "id", d.ID, "correlation", d.CorrelationID,
			"attempt", d.Attempt, "of", sub.cfg.spec.Retry.MaxAttempts, "dead_letter", o.Reason, "err", o.Err)
	case Compensated:
		a.log.Warn("compensated", "subscription", ref, "type", d.Type, "id", d.ID,
			"correlation", d.CorrelationID, "failure", sub.cfg.compensate.topic.Type(), "cause", o.Err)
	case Interrupted:
		a.log.Info("handling interrupted; the event will be delivered again", "subscription", ref, "type", d.Type,
			"id", d.ID, "correlation", d.CorrelationID, "attempt", d.Attempt, "err", o.Err)
	}
}

// compensate publishes sub's declared failure event for ev, which failed
// for good with cause, in the context the handler ran in. It returns an
// error, and the event is dead-lettered, when the failure event could not
// be published.
func (a *App) compensate(ctx context.Context, sub *Subscription, ev any, env *Envelope, cause error) error {
	c := sub.cfg.compensate
	cctx := newAttemptCtx(ctx, sub.cfg.deadline)
	defer cctx.end()
	cctx.scope = scope{app: a, service: sub.service, sub: sub, ev: env, salt: "compensation"}
	if err := c.publish(cctx, ev, cause); err != nil {
		a.log.Error("compensation failed; dead-lettering the event", "subscription", sub.String(),
			"id", env.ID, "failure", c.topic.Type(), "err", err)
		return fmt.Errorf("publishing %s failed: %w", c.topic.Type(), err)
	}
	return nil
}
