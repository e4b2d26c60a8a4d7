package tracing

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/troupe-go/troupe"
)

// NewProvider returns an OpenTelemetry SDK tracer provider that exports
// spans in batches over OTLP/HTTP with protobuf, configured the standard
// way, by environment:
//
//   - OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:
//     the collector. Default http://localhost:4318 (path /v1/traces). An
//     http:// endpoint is sent in clear text, https:// with TLS.
//   - OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT (default 10s), _COMPRESSION
//     ("gzip" or none), _CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY, and
//     their _TRACES_ variants.
//   - OTEL_EXPORTER_OTLP_PROTOCOL or OTEL_EXPORTER_OTLP_TRACES_PROTOCOL:
//     only "http/protobuf" (the default) is supported; "grpc" and
//     "http/json" make NewProvider fail rather than send what the collector
//     does not expect.
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: the resource;
//     service.name defaults to serviceName.
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG: the sampler.
//     Default parentbased_always_on.
//   - OTEL_BSP_*: the batch span processor's queue, batch size and delay
//     (default: up to 512 spans every 5s, 2048 queued, then dropped).
//   - OTEL_SDK_DISABLED=true: a provider whose spans are never sampled, so
//     trace context still flows through events but nothing is recorded or
//     sent.
//
// opts are applied after these and override them (a sampler, a resource,
// another span processor). Nothing connects until the first export; a
// collector that is down costs dropped spans, logged through otel's error
// handler, never a failed publish or handler. Call Shutdown on the
// provider when the app has stopped, to export the last spans.
func NewProvider(ctx context.Context, serviceName string, opts ...sdktrace.TracerProviderOption) (*sdktrace.TracerProvider, error) {
	for _, key := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		p := strings.TrimSpace(os.Getenv(key))
		if p == "" {
			continue
		}
		if p != "http/protobuf" {
			return nil, fmt.Errorf("tracing: %s=%q is not supported: troupe exports OTLP over HTTP with protobuf; set it to http/protobuf and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (usually 4318)", key, p)
		}
		break // the traces-specific setting wins
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the default name
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{
			sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.NeverSample()),
		}, opts...)...), nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{
		sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
	}, opts...)...), nil
}

// ShutdownTimeout bounds how long the stop of an app set up with
// [InstallFromEnv] waits to export its last spans.
const ShutdownTimeout = 5 * time.Second

// InstallFromEnv builds a provider with [NewProvider] (service name: the
// app's name), installs the middleware with [Install], and shuts the
// provider down when the app stops, after its handlers have finished, so
// the last spans are exported. That export waits at most [ShutdownTimeout]
// (or the app's shutdown timeout, if shorter); spans it could not send by
// then, a collector being down for example, are dropped with a warning in
// the app's log, and Stop does not fail for them. It returns the provider, for instrumenting other code with the same one
// (otel.SetTracerProvider is left to the caller). It fails as NewProvider
// does. If the app never starts, or fails to start, shut the provider down
// yourself.
func InstallFromEnv(ctx context.Context, app *troupe.App, opts ...Option) (*sdktrace.TracerProvider, error) {
	tp, err := NewProvider(ctx, app.Name())
	if err != nil {
		return nil, err
	}
	Install(app, tp, opts...)
	app.OnStop(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			app.Logger().Warn("tracing: the last spans were not exported", "err", err)
		}
		return nil
	})
	return tp, nil
}
