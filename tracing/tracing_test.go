package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/tracing"
	"github.com/troupe-go/troupe/troupetest"
)

type orderPlaced struct {
	ID string `json:"id"`
}

type paymentSucceeded struct {
	OrderID string `json:"order_id"`
}

var (
	placed = troupe.NewTopic[orderPlaced]("order_placed", 1)
	paid   = troupe.NewTopic[paymentSucceeded]("payment_succeeded", 1)
)

// shop builds an app of three services: orders publishes order_placed,
// payment.charge handles it (failing the first attempt at each event) and
// publishes payment_succeeded, which shipping.ship handles.
func shop(t *testing.T, name string, cfg ...troupe.Config) *troupe.App {
	var c troupe.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.Name = name
	app := troupe.New(troupetest.Config(t, c))
	app.Service("orders").Publishes(placed)
	payment := app.Service("payment").Publishes(paid)
	shipping := app.Service("shipping")
	troupe.Subscribe(payment, placed, "charge",
		troupetest.FailFirst(1, errors.New("card network busy"),
			func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
				return troupe.Publish(ctx, paid, paymentSucceeded{OrderID: ev.Data.ID})
			}),
		troupe.Emits(paid), troupe.Backoff(10*time.Millisecond, 10*time.Millisecond))
	troupe.Subscribe(shipping, paid, "ship",
		func(context.Context, troupe.Event[paymentSucceeded]) error { return nil })
	return app
}

// TestChainIsOneTrace: an order placed at the edge, charged (after one
// retry) and shipped by two other services, is one trace: the consumer
// spans are children of the producer span of the event they handle, and
// the handler's publish is a child of its consumer span.
func TestChainIsOneTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	app := shop(t, "tracechain")
	tracing.Install(app, tp)
	troupetest.Start(t, app)

	ctx := troupe.WithCorrelationID(app.Context(t.Context()), "order-7")
	if err := troupe.Publish(ctx, placed, orderPlaced{ID: "7"}); err != nil {
		t.Fatal(err)
	}
	spans := waitSpans(t, rec, 5)

	send := only(t, spans, "send order_placed.v1")
	charges := all(spans, "process order_placed.v1")
	sendPaid := only(t, spans, "send payment_succeeded.v1")
	ship := only(t, spans, "process payment_succeeded.v1")
	if len(charges) != 2 {
		t.Fatalf("want 2 attempts of payment.charge, got %d", len(charges))
	}
	first, second := charges[0], charges[1]
	if attr(first, "troupe.attempt").AsInt64() == 2 {
		first, second = second, first
	}

	traceID := send.SpanContext().TraceID()
	for _, s := range spans {
		if s.SpanContext().TraceID() != traceID {
			t.Errorf("span %q is in trace %s, not the order's trace %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
	}
	if send.Parent().IsValid() {
		t.Errorf("the edge publish has a parent %s; want a new trace", send.Parent().SpanID())
	}
	childOf(t, first, send)
	childOf(t, second, send)
	childOf(t, sendPaid, second)
	childOf(t, ship, sendPaid)

	kinds := map[sdktrace.ReadOnlySpan]trace.SpanKind{send: trace.SpanKindProducer, sendPaid: trace.SpanKindProducer,
		first: trace.SpanKindConsumer, second: trace.SpanKindConsumer, ship: trace.SpanKindConsumer}
	for s, k := range kinds {
		if s.SpanKind() != k {
			t.Errorf("span %q is of kind %s, want %s", s.Name(), s.SpanKind(), k)
		}
	}

	// The retry is visible: attempt 1 failed and was retried, attempt 2
	// succeeded.
	want := map[string]any{
		"messaging.system": "nats", "messaging.operation.type": "process",
		"messaging.destination.name": "order_placed.v1", "messaging.consumer.group.name": "payment.charge",
		"messaging.destination.subscription.name": "payment.charge",
		"messaging.message.conversation_id":       "order-7",
		"troupe.attempt":                          int64(1), "troupe.max_attempts": int64(8), "troupe.outcome": tracing.OutcomeRetried,
	}
	hasAttrs(t, first, want)
	if first.Status().Code != codes.Error || !strings.Contains(first.Status().Description, "card network busy") {
		t.Errorf("failed attempt's status: %+v", first.Status())
	}
	if !hasEvent(first, "exception") {
		t.Errorf("failed attempt has no exception event: %v", first.Events())
	}
	want["troupe.attempt"], want["troupe.outcome"] = int64(2), tracing.OutcomeHandled
	hasAttrs(t, second, want)
	if second.Status().Code == codes.Error {
		t.Errorf("successful attempt has status %+v", second.Status())
	}

	msgID := attr(send, "messaging.message.id").AsString()
	hasAttrs(t, send, map[string]any{
		"messaging.system": "nats", "messaging.operation.type": "send",
		"messaging.destination.name": "order_placed.v1", "messaging.message.conversation_id": "order-7",
	})
	hasAttrs(t, first, map[string]any{"messaging.message.id": msgID})
	hasAttrs(t, sendPaid, map[string]any{
		"messaging.message.conversation_id": "order-7", "troupe.causation_id": msgID,
	})
}

// TestDeadLetterOutcome: the last failed attempt says dead_letter, and so
// does a permanent error on the first.
func TestDeadLetterOutcome(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "tracedead"}))
	app.Service("orders").Publishes(placed)
	troupe.Subscribe(app.Service("billing"), placed, "charge",
		func(_ context.Context, ev troupe.Event[orderPlaced]) error {
			if ev.Data.ID == "bad" {
				return troupe.Permanent(errors.New("no such customer"))
			}
			return errors.New("down")
		}, troupe.MaxAttempts(2), troupe.Backoff(10*time.Millisecond, 10*time.Millisecond))
	tracing.Install(app, tp)
	troupetest.Start(t, app)

	ctx := app.Context(t.Context())
	if err := troupe.PublishBatch(ctx, placed, []orderPlaced{{ID: "down"}, {ID: "bad"}}); err != nil {
		t.Fatal(err)
	}
	spans := waitSpans(t, rec, 5) // two sends, three attempts
	outcomes := map[string]int{}
	for _, s := range all(spans, "process order_placed.v1") {
		outcomes[fmt.Sprintf("attempt %d %s", attr(s, "troupe.attempt").AsInt64(), attr(s, "troupe.outcome").AsString())]++
	}
	wantOutcomes := map[string]int{"attempt 1 retried": 1, "attempt 2 dead-lettered": 1, "attempt 1 dead-lettered": 1}
	if fmt.Sprint(outcomes) != fmt.Sprint(wantOutcomes) {
		t.Errorf("outcomes %v, want %v", outcomes, wantOutcomes)
	}
	// One producer span per event of the batch, each its own trace.
	sends := all(spans, "send order_placed.v1")
	if len(sends) != 2 || sends[0].SpanContext().TraceID() == sends[1].SpanContext().TraceID() {
		t.Fatalf("want 2 send spans in 2 traces, got %d", len(sends))
	}
	for _, s := range sends {
		hasAttrs(t, s, map[string]any{"messaging.batch.message_count": int64(2)})
	}
}

// TestParentFromContext: a publish inside a span of the caller (an HTTP
// request's, say) joins that span's trace.
func TestParentFromContext(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "traceparent"}))
	app.Service("orders").Publishes(placed)
	tracing.Install(app, tp)
	troupetest.Start(t, app)

	ctx, root := tp.Tracer("test").Start(app.Context(t.Context()), "POST /orders")
	if err := troupe.Publish(ctx, placed, orderPlaced{ID: "1"}); err != nil {
		t.Fatal(err)
	}
	root.End()
	spans := waitSpans(t, rec, 2)
	childOf(t, only(t, spans, "send order_placed.v1"), only(t, spans, "POST /orders"))
}

// TestNeverSampled: with a sampler that records nothing, no span is
// recorded, and the trace context still travels, unsampled.
func TestNeverSampled(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.NeverSample()))
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "tracenever"}))
	app.Service("orders").Publishes(placed)
	got := make(chan string, 1)
	troupe.Subscribe(app.Service("billing"), placed, "charge",
		func(_ context.Context, ev troupe.Event[orderPlaced]) error {
			got <- ev.TraceParent
			return nil
		})
	tracing.Install(app, tp)
	troupetest.Start(t, app)
	if err := troupe.Publish(app.Context(t.Context()), placed, orderPlaced{ID: "1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case tp := <-got:
		if len(tp) != 55 || !strings.HasSuffix(tp, "-00") {
			t.Errorf("traceparent %q: want a W3C traceparent with the sampled flag off", tp)
		}
	case <-time.After(troupetest.DefaultTimeout):
		t.Fatal("event not handled")
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded with NeverSample", n)
	}
}

// waitSpans waits until rec has at least n ended spans and returns them.
func waitSpans(t *testing.T, rec *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(troupetest.DefaultTimeout)
	for {
		spans := rec.Ended()
		if len(spans) >= n {
			return spans
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range spans {
				names = append(names, s.Name())
			}
			t.Fatalf("want %d spans, got %d: %v", n, len(spans), names)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func all(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func only(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	found := all(spans, name)
	if len(found) != 1 {
		t.Fatalf("want one span %q, got %d", name, len(found))
	}
	return found[0]
}

func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.Parent().SpanID() != parent.SpanContext().SpanID() || child.Parent().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span %q: parent %s/%s, want %q %s/%s", child.Name(), child.Parent().TraceID(), child.Parent().SpanID(),
			parent.Name(), parent.SpanContext().TraceID(), parent.SpanContext().SpanID())
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func hasAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got := attr(s, k).AsInterface(); got != v {
			t.Errorf("span %q: %s = %v (%T), want %v", s.Name(), k, got, got, v)
		}
	}
}

func hasEvent(s sdktrace.ReadOnlySpan, name string) bool {
	for _, e := range s.Events() {
		if e.Name == name {
			return true
		}
	}
	return false
}

// TestPublishError: a publish the broker refuses ends its producer span
// with status Error and the error recorded.
func TestPublishError(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	lb := newLoopback()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "tracepuberr", Transport: lb}))
	app.Service("orders").Publishes(placed)
	tracing.Install(app, tp, tracing.WithSystem("loopback"))
	troupetest.Start(t, app)
	lb.fail = errors.New("broker said no")
	if err := troupe.Publish(app.Context(t.Context()), placed, orderPlaced{ID: "1"}); err == nil {
		t.Fatal("publish succeeded")
	}
	send := only(t, rec.Ended(), "send order_placed.v1")
	if send.Status().Code != codes.Error || !strings.Contains(send.Status().Description, "broker said no") || !hasEvent(send, "exception") {
		t.Errorf("span status %+v, events %v", send.Status(), send.Events())
	}
	hasAttrs(t, send, map[string]any{"messaging.system": "loopback"})
}

// TestEncodedLaterKeepsTheWritersTrace: an event encoded in one context (an
// HTTP request writing to an outbox) and published later in another (the
// outbox's relay) is sent, and handled, in the writer's trace.
func TestEncodedLaterKeepsTheWritersTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "traceencode"}))
	app.Service("orders").Publishes(placed)
	troupe.Subscribe(app.Service("payment"), placed, "charge",
		func(context.Context, troupe.Event[orderPlaced]) error { return nil })
	tracing.Install(app, tp)
	troupetest.Start(t, app)

	ctx, root := tp.Tracer("test").Start(app.Context(t.Context()), "POST /orders")
	msgs, err := troupe.Encode(ctx, placed, orderPlaced{ID: "1"})
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	// The relay: no span in its context.
	if err := app.PublishMessages(app.Context(context.Background()), msgs...); err != nil {
		t.Fatal(err)
	}
	spans := waitSpans(t, rec, 3)
	send := only(t, spans, "send order_placed.v1")
	childOf(t, send, only(t, spans, "POST /orders"))
	childOf(t, only(t, spans, "process order_placed.v1"), send)
}
