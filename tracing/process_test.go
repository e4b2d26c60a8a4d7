package tracing_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/tracing"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
	"github.com/troupe-go/troupe/troupetest"
)

// TestAcrossProcesses runs the shop as two processes (two apps of one
// name, each with its own tracer provider, as two programs would have) on
// a real broker: orders in one, payment and shipping in the other. The
// spans the second records continue the trace the first started, through
// the traceparent and tracestate the broker carried in the event's
// headers. External brokers are skipped when absent, except in CI.
func TestAcrossProcesses(t *testing.T) {
	for _, b := range []struct{ name, url, system string }{
		{"nats", env("TROUPE_TEST_NATS", "nats://127.0.0.1:4222"), "nats"},
		{"rabbitmq", env("TROUPE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"), "rabbitmq"},
	} {
		t.Run(b.name, func(t *testing.T) {
			need(t, b.url)
			ns := fmt.Sprintf("trace%x", time.Now().UnixNano())
			t.Cleanup(func() { cleanup(t, b.url, ns) })
			process := func(services ...string) (*troupe.App, *tracetest.SpanRecorder, trace.TracerProvider) {
				rec := tracetest.NewSpanRecorder()
				tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
				app := shop(t, ns, troupe.Config{Broker: b.url, Services: services})
				tracing.Install(app, tp)
				troupetest.Start(t, app)
				return app, rec, tp
			}
			// Payment first, so its subscriptions exist before orders
			// publishes (RabbitMQ keeps nothing for queues declared later).
			_, payRec, _ := process("payment", "shipping")
			ordersApp, ordersRec, ordersTP := process("orders")

			// The edge request carries a tracestate entry, which must travel too.
			ts, err := trace.ParseTraceState("vendor=abc")
			if err != nil {
				t.Fatal(err)
			}
			root := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
				TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
			})
			ctx := trace.ContextWithRemoteSpanContext(ordersApp.Context(t.Context()), root)
			ctx, span := ordersTP.Tracer("test").Start(ctx, "POST /orders")
			if err := troupe.Publish(ctx, placed, orderPlaced{ID: "1"}); err != nil {
				t.Fatal(err)
			}
			span.End()

			sent := only(t, waitSpans(t, ordersRec, 2), "send order_placed.v1")
			spans := waitSpans(t, payRec, 4)
			charges := all(spans, "process order_placed.v1")
			if len(charges) != 2 {
				t.Fatalf("want 2 attempts at payment.charge, got %d", len(charges))
			}
			for _, c := range charges {
				childOf(t, c, sent)
				hasAttrs(t, c, map[string]any{"messaging.system": b.system})
				if got := c.Parent().TraceState().Get("vendor"); got != "abc" {
					t.Errorf("tracestate vendor=%q after the broker, want abc", got)
				}
			}
			for _, s := range spans {
				if s.SpanContext().TraceID() != root.TraceID() {
					t.Errorf("span %q in trace %s, want the edge's %s", s.Name(), s.SpanContext().TraceID(), root.TraceID())
				}
			}
			childOf(t, only(t, spans, "process payment_succeeded.v1"), only(t, spans, "send payment_succeeded.v1"))
			hasAttrs(t, sent, map[string]any{"messaging.system": b.system})
		})
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// need skips the test when nothing listens at the broker URL's address,
// or fails it in CI.
func need(t *testing.T, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no broker at %s (%v): CI needs it", u.Redacted(), err)
		}
		t.Skipf("no broker at %s (%v); start it to run this test", u.Redacted(), err)
	}
	c.Close()
}

// cleanup deletes what the shop declared on a shared broker.
func cleanup(t *testing.T, raw, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if u, _ := url.Parse(raw); u != nil && u.Scheme == "nats" {
		nc, err := nats.Connect(raw)
		if err != nil {
			return
		}
		defer nc.Close()
		_ = natsjs.DeleteNamespace(ctx, nc, ns)
		return
	}
	conn, err := amqp.Dial(raw)
	if err != nil {
		return
	}
	defer conn.Close()
	var queues []string
	for _, q := range []string{"payment.charge", "shipping.ship"} {
		q = ns + "." + q
		queues = append(queues, q, q+".dlq")
		for _, d := range rabbitmq.DefaultRetryDelays {
			queues = append(queues, fmt.Sprintf("%s.retry.%dms", q, d.Milliseconds()))
		}
	}
	for _, q := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			ch.Close()
		}
	}
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete("troupe."+ns, false, false)
		ch.Close()
	}
}
