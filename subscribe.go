package troupe

import (
	"context"
	"errors"
	"fmt"
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
