package tracing_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/tracing"
	"github.com/troupe-go/troupe/troupetest"
)

// collector is an OTLP/HTTP trace receiver: it decodes the protobuf
// requests posted to /v1/traces and keeps their spans.
type collector struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
	headers  []string // the test header of each request
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces with application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.headers = append(c.headers, r.Header.Get("X-Test-Tenant"))
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				c.services = append(c.services, kv.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (c *collector) snapshot() (spans []*tracepb.Span, services, headers []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...), append([]string(nil), c.services...), append([]string(nil), c.headers...)
}

// TestExportOTLP: a provider built from the standard OTEL_EXPORTER_OTLP_*
// variables sends the chain's spans over real OTLP/HTTP, as protobuf, to a
// collector, which sees one trace with the parent links, the messaging
// attributes, the resource's service name and the configured headers.
func TestExportOTLP(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-test-tenant=troupe")
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")

	app := shop(t, "traceotlp")
	tp, err := tracing.InstallFromEnv(t.Context(), app)
	if err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)
	ctx := troupe.WithCorrelationID(app.Context(t.Context()), "order-9")
	if err := troupe.Publish(ctx, placed, orderPlaced{ID: "9"}); err != nil {
		t.Fatal(err)
	}

	// Flush until the collector has all five spans of the chain.
	var spans []*tracepb.Span
	deadline := time.Now().Add(troupetest.DefaultTimeout)
	for len(spans) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("collector got %d spans, want 5", len(spans))
		}
		fctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		if err := tp.ForceFlush(fctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
		cancel()
		spans, _, _ = col.snapshot()
		if len(spans) < 5 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	_, services, headers := col.snapshot()
	for _, s := range services {
		if s != "traceotlp" {
			t.Errorf("resource service.name %q, want the app's name", s)
		}
	}
	for _, h := range headers {
		if h != "troupe" {
			t.Errorf("request header x-test-tenant %q, want troupe (from OTEL_EXPORTER_OTLP_HEADERS)", h)
		}
	}

	byName := map[string][]*tracepb.Span{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
	}
	send, ship := byName["send order_placed.v1"], byName["process payment_succeeded.v1"]
	charges, sendPaid := byName["process order_placed.v1"], byName["send payment_succeeded.v1"]
	if len(send) != 1 || len(ship) != 1 || len(charges) != 2 || len(sendPaid) != 1 {
		t.Fatalf("spans by name: %v", names(spans))
	}
	for _, s := range spans {
		if !bytes.Equal(s.TraceId, send[0].TraceId) {
			t.Errorf("span %q in trace %s, want %s", s.Name, hex.EncodeToString(s.TraceId), hex.EncodeToString(send[0].TraceId))
		}
	}
	for _, c := range charges {
		pbChildOf(t, c, send[0])
		if c.Kind != tracepb.Span_SPAN_KIND_CONSUMER {
			t.Errorf("span %q kind %s", c.Name, c.Kind)
		}
	}
	pbChildOf(t, ship[0], sendPaid[0])
	if send[0].Kind != tracepb.Span_SPAN_KIND_PRODUCER {
		t.Errorf("span %q kind %s", send[0].Name, send[0].Kind)
	}
	failed := 0
	for _, c := range charges {
		if c.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
			failed++
			if pbAttr(c, "troupe.outcome") != tracing.OutcomeRetried {
				t.Errorf("failed attempt's troupe.outcome %q", pbAttr(c, "troupe.outcome"))
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d failed attempts exported, want 1", failed)
	}
	if got := pbAttr(send[0], "messaging.message.conversation_id"); got != "order-9" {
		t.Errorf("conversation id %q", got)
	}
	if got := pbAttr(ship[0], "messaging.consumer.group.name"); got != "shipping.ship" {
		t.Errorf("consumer group %q", got)
	}
}

// TestProtocolNotSupported: asking for gRPC fails with the fix rather than
// sending protobuf over HTTP to a gRPC port.
func TestProtocolNotSupported(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	_, err := tracing.NewProvider(t.Context(), "x")
	if err == nil || !strings.Contains(err.Error(), "http/protobuf") {
		t.Fatalf("got %v, want an error naming http/protobuf", err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
	tp, err := tracing.NewProvider(t.Context(), "x")
	if err != nil {
		t.Fatalf("the traces-specific protocol should win: %v", err)
	}
	_ = tp.Shutdown(t.Context())
}

func pbChildOf(t *testing.T, child, parent *tracepb.Span) {
	t.Helper()
	if !bytes.Equal(child.ParentSpanId, parent.SpanId) {
		t.Errorf("span %q: parent %s, want %q %s", child.Name, hex.EncodeToString(child.ParentSpanId), parent.Name, hex.EncodeToString(parent.SpanId))
	}
}

func pbAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func names(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// TestCollectorDown: with a collector that does not take spans (one that
// answers 503, which the exporter retries for a minute, and one that is not
// there at all), events are published and handled all the same, and Stop
// gives up exporting after tracing.ShutdownTimeout instead of waiting out
// the exporter's retries.
func TestCollectorDown(t *testing.T) {
	for _, down := range []string{"unavailable", "absent"} {
		t.Run(down, func(t *testing.T) { collectorDown(t, down) })
	}
}

func collectorDown(t *testing.T, down string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	if down == "absent" {
		srv.Close() // nothing listens there any more
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)

	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "tracedown"}))
	app.Service("orders").Publishes(placed)
	handled := make(chan struct{}, 1)
	troupe.Subscribe(app.Service("billing"), placed, "charge",
		func(context.Context, troupe.Event[orderPlaced]) error {
			handled <- struct{}{}
			return nil
		})
	if _, err := tracing.InstallFromEnv(t.Context(), app); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := troupe.Publish(app.Context(t.Context()), placed, orderPlaced{ID: "1"}); err != nil {
		t.Fatalf("publish with the collector down: %v", err)
	}
	select {
	case <-handled:
	case <-time.After(troupetest.DefaultTimeout):
		t.Fatal("event not handled with the collector down")
	}
	// The exporter retries for a minute: a Stop that waited for it would
	// end with this context's deadline, and fail.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := app.Stop(ctx); err != nil {
		t.Errorf("Stop: %v; a collector that is down should cost spans, not a failed stop", err)
	}
}
