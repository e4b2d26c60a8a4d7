// Package tracing traces a troupe app with OpenTelemetry: a producer span
// for every event published, a consumer span for every attempt at handling
// one, and the W3C trace context carried on the wire in the event's
// traceparent attribute, so one business transaction across services and
// processes is one trace.
//
// Turn it on with [Install] before the app starts:
//
//	tp, err := tracing.NewProvider(ctx, "shop") // OTLP/HTTP, configured by OTEL_EXPORTER_OTLP_*
//	...
//	tracing.Install(app, tp)
//
// or, in one step that also flushes the spans when the app stops,
// [InstallFromEnv]. An app without the middleware has no tracing code on its
// paths at all: the troupe package does not import OpenTelemetry.
//
// # What a trace looks like
//
// A publish at the edge (an HTTP route, a script) makes a span
// "send <type>" of kind producer, a child of the span in the publishing
// context if there is one, else the root of a new trace. Its context
// travels in the event's traceparent (and tracestate) attribute. Each
// subscription that handles the event makes a span "process <type>" of kind
// consumer, a child of that producer span, once per attempt: a retried
// event shows as sibling consumer spans with troupe.attempt 1, 2, 3, the
// failed ones with status Error, the recorded error and troupe.outcome
// "retried", "dead-lettered", "compensated" or "interrupted". Events the handler publishes get producer spans
// that are children of its consumer span, and so on down the choreography:
//
//	send order_placed.v1                      (orders, producer)
//	├── process order_placed.v1               (payment.charge, attempt 1, error, retry)
//	├── process order_placed.v1               (payment.charge, attempt 2)
//	│   └── send payment_succeeded.v1
//	│       └── process payment_succeeded.v1  (shipping.ship)
//	└── process order_placed.v1               (audit.log)
//
// # Attributes
//
// Spans follow the OpenTelemetry semantic conventions for messaging
// (schema 1.43): messaging.system ("nats" on the embedded broker and NATS,
// "rabbitmq" on RabbitMQ), messaging.operation.type ("send" or "process"),
// messaging.operation.name, messaging.destination.name (the event's wire
// type, "<topic>.v<N>"), messaging.message.id (the event id),
// messaging.message.conversation_id (troupe's correlation id, which names
// the business transaction), messaging.message.body.size, and on consumer
// spans messaging.consumer.group.name and
// messaging.destination.subscription.name (the subscription,
// "service.name"). troupe adds troupe.causation_id, and on consumer spans
// troupe.attempt, troupe.max_attempts, troupe.replays (when replayed) and
// troupe.outcome (handled, retried, dead-lettered, compensated or
// interrupted: the outcome troupe decided, as troupe.Outcome names it; the
// span ends once it is settled). A failed attempt also has error.type and
// an exception event.
package tracing

import (
	"context"
	"reflect"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// ScopeName is the instrumentation scope of the spans this package makes.
const ScopeName = "github.com/troupe-go/troupe/tracing"

// Attribute keys troupe adds to the messaging conventions.
const (
	AttrCausationID = attribute.Key("troupe.causation_id")
	AttrAttempt     = attribute.Key("troupe.attempt")
	AttrMaxAttempts = attribute.Key("troupe.max_attempts")
	AttrReplays     = attribute.Key("troupe.replays")
	AttrOutcome     = attribute.Key("troupe.outcome")
)

// Values of [AttrOutcome] on consumer spans: the outcome troupe decided
// for the attempt, named as troupe.Outcome names it.
const (
	OutcomeHandled      = string(troupe.Handled)
	OutcomeRetried      = string(troupe.Retried)
	OutcomeDeadLettered = string(troupe.DeadLettered)
	OutcomeCompensated  = string(troupe.Compensated)
	OutcomeInterrupted  = string(troupe.Interrupted)
)

// Option tunes the middleware. Each documents its default.
type Option func(*config)

type config struct {
	prop   propagation.TextMapPropagator
	system string
}

// WithPropagator sets how span contexts are written to and read from
// events. Default propagation.TraceContext{}: the W3C traceparent and
// tracestate, which troupe carries as the CloudEvents attributes of those
// names (the distributed tracing extension). Fields other than traceparent
// travel as CloudEvents extension attributes of the same name, so use
// propagators whose field names are lower-case letters and digits (W3C
// baggage's "baggage" is).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

// WithSystem sets messaging.system. Default: found from the app's
// transport by [Install] ("nats" for the embedded broker and nats://,
// "rabbitmq" for amqp://, "troupe" for any other); "troupe" with
// [Middleware] alone, which does not know the app.
func WithSystem(name string) Option {
	return func(c *config) { c.system = name }
}

// Install adds the tracing middleware to app. Call it before Start, as
// [troupe.App.Use] requires. tp nil means otel.GetTracerProvider(). The
// app does not own tp: shut it down after the app stops, so that the last
// spans are exported (or use [InstallFromEnv]).
func Install(app *troupe.App, tp trace.TracerProvider, opts ...Option) {
	var once sync.Once
	var system string
	detect := func() string {
		once.Do(func() { system = systemOf(app.Transport()) })
		return system
	}
	app.Use(middleware(tp, detect, opts))
}

// Middleware returns the tracing middleware, for apps that order their
// middlewares themselves with [troupe.App.Use]; [Install] is the usual
// way. tp nil means otel.GetTracerProvider(). Place it before (outside)
// middlewares whose work should count in the spans.
func Middleware(tp trace.TracerProvider, opts ...Option) troupe.Middleware {
	return middleware(tp, func() string { return "troupe" }, opts)
}

func middleware(tp trace.TracerProvider, detect func() string, opts []Option) troupe.Middleware {
	c := config{prop: propagation.TraceContext{}}
	for _, o := range opts {
		o(&c)
	}
	if c.system != "" {
		sys := c.system
		detect = func() string { return sys }
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t := &tracer{
		tr:     tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:   c.prop,
		system: detect,
	}
	return troupe.Middleware{Name: "tracing", Publish: t.publish, Handle: t.handle, Settled: t.settled, Encode: t.encode}
}

// encode records, on each event as it is written, the trace context of the
// code that writes it, so an event an outbox relays later, in a context of
// its own, still continues that trace (see publish).
func (t *tracer) encode(ctx context.Context, msgs []*transport.Message) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	for _, m := range msgs {
		t.prop.Inject(ctx, messageCarrier{m})
	}
}

type tracer struct {
	tr     trace.Tracer
	prop   propagation.TextMapPropagator
	system func() string
}

// publish starts one producer span per event, so that each event's
// consumers hang under its own span: the events of one batch may start
// different business transactions, and a trace is one transaction. The
// spans cover the whole call, which is how long the broker took to confirm
// all of them.
func (t *tracer) publish(next troupe.PublishFunc) troupe.PublishFunc {
	return func(ctx context.Context, msgs []*transport.Message) error {
		var one [1]trace.Span
		spans := one[:0]
		if len(msgs) > 1 {
			spans = make([]trace.Span, 0, len(msgs))
		}
		inCtx := trace.SpanContextFromContext(ctx).IsValid()
		sys := t.system()
		for _, m := range msgs {
			parent := ctx
			if !inCtx && m.TraceParent != "" {
				// Prepared earlier (an outbox relaying what a handler
				// encoded): keep the trace it was encoded in.
				parent = t.prop.Extract(ctx, messageCarrier{m})
			}
			sctx, span := t.tr.Start(parent, "send "+m.Type,
				trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(
					semconv.MessagingSystemKey.String(sys),
					semconv.MessagingOperationTypeSend,
					semconv.MessagingDestinationName(m.Type),
				))
			if span.IsRecording() {
				var buf [7]attribute.KeyValue // one SetAttributes call: the span's slice grows once
				attrs := append(buf[:0],
					semconv.MessagingOperationName("send"),
					semconv.MessagingMessageID(m.ID),
					semconv.MessagingMessageConversationID(m.CorrelationID),
					semconv.MessagingMessageBodySize(len(m.Data)),
				)
				if m.CausationID != "" {
					attrs = append(attrs, AttrCausationID.String(m.CausationID))
				}
				if len(msgs) > 1 {
					attrs = append(attrs, semconv.MessagingBatchMessageCount(len(msgs)))
				}
				span.SetAttributes(attrs...)
			}
			if span.SpanContext().IsValid() {
				t.prop.Inject(sctx, messageCarrier{m})
			}
			spans = append(spans, span)
		}
		err := next(ctx, msgs)
		for _, s := range spans {
			if err != nil {
				s.RecordError(err)
				s.SetStatus(codes.Error, err.Error())
				s.SetAttributes(semconv.ErrorType(err))
			}
			s.End()
		}
		return err
	}
}

// handle starts one consumer span per attempt, a child of the context the
// event carries; settled ends it with the outcome troupe decided.
func (t *tracer) handle(sub *troupe.Subscription, next troupe.HandleFunc) troupe.HandleFunc {
	group := sub.String()
	subTopic := sub.Topic()
	subName := "process " + subTopic
	maxAttempts := sub.Config().MaxAttempts
	return func(ctx context.Context, d *transport.Delivery) error {
		parent := ctx
		if d.TraceParent != "" {
			parent = t.prop.Extract(ctx, messageCarrier{&d.Message})
		}
		name := subName
		if d.Type != subTopic {
			name = "process " + d.Type // an older version, upcast for the handler
		}
		hctx, span := t.tr.Start(parent, name,
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				semconv.MessagingSystemKey.String(t.system()),
				semconv.MessagingOperationTypeProcess,
				semconv.MessagingDestinationName(d.Type),
				semconv.MessagingConsumerGroupName(group),
			))
		if span.IsRecording() {
			var buf [10]attribute.KeyValue
			attrs := append(buf[:0],
				semconv.MessagingOperationName("process"),
				semconv.MessagingDestinationSubscriptionName(group),
				semconv.MessagingMessageID(d.ID),
				semconv.MessagingMessageConversationID(d.CorrelationID),
				semconv.MessagingMessageBodySize(len(d.Data)),
				AttrAttempt.Int(d.Attempt),
				AttrMaxAttempts.Int(maxAttempts),
			)
			if d.CausationID != "" {
				attrs = append(attrs, AttrCausationID.String(d.CausationID))
			}
			if d.Replays > 0 {
				attrs = append(attrs, AttrReplays.Int(d.Replays))
			}
			span.SetAttributes(attrs...)
		}
		// Under a key of our own: a span a middleware inside this one
		// starts must not be the one settled ends.
		return next(context.WithValue(hctx, consumerSpanKey{}, span), d)
	}
}

// consumerSpanKey carries the consumer span of an attempt from handle to
// settled.
type consumerSpanKey struct{}

// settled ends the attempt's consumer span with the outcome troupe
// decided: a failed attempt is an error, whatever became of it.
func (t *tracer) settled(*troupe.Subscription) troupe.SettledFunc {
	return func(ctx context.Context, s troupe.Settlement) {
		span, ok := ctx.Value(consumerSpanKey{}).(trace.Span)
		if !ok {
			return
		}
		if span.IsRecording() {
			span.SetAttributes(AttrOutcome.String(string(s.Outcome)))
			if s.Err != nil {
				span.RecordError(s.Err)
				span.SetStatus(codes.Error, s.Err.Error())
				span.SetAttributes(semconv.ErrorType(s.Err))
			}
		}
		span.End()
	}
}

// messageCarrier lets a propagator read and write an event's trace
// context: traceparent is the Message field of that name, every other
// field a CloudEvents extension attribute.
type messageCarrier struct{ m *transport.Message }

func (c messageCarrier) Get(key string) string {
	key = strings.ToLower(key)
	if key == transport.HeaderTraceParent {
		return c.m.TraceParent
	}
	return c.m.Extensions[key]
}

func (c messageCarrier) Set(key, value string) {
	key = strings.ToLower(key)
	if key == transport.HeaderTraceParent {
		c.m.TraceParent = value
		return
	}
	if c.m.Extensions == nil {
		c.m.Extensions = make(map[string]string, 1)
	}
	c.m.Extensions[key] = value
}

func (c messageCarrier) Keys() []string {
	keys := make([]string, 0, 1+len(c.m.Extensions))
	if c.m.TraceParent != "" {
		keys = append(keys, transport.HeaderTraceParent)
	}
	for k := range c.m.Extensions {
		keys = append(keys, k)
	}
	return keys
}

// systemOf names the broker behind a transport for messaging.system, from
// the package that implements it.
func systemOf(tr transport.Transport) string {
	if tr == nil {
		return "troupe"
	}
	typ := reflect.TypeOf(tr)
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch p := typ.PkgPath(); {
	case strings.HasSuffix(p, "/transport/natsjs"):
		return "nats"
	case strings.HasSuffix(p, "/transport/rabbitmq"):
		return "rabbitmq"
	}
	return "troupe"
}
