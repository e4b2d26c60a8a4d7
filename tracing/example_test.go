package tracing_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sort"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/tracing"
)

type signedUp struct {
	Email string `json:"email"`
}

var userSignedUp = troupe.NewTopic[signedUp]("user_signed_up", 1)

// A publish at the edge and its handling in another service make one trace:
// the consumer span is a child of the producer span.
func ExampleInstall() {
	dir, _ := os.MkdirTemp("", "tracing-example")
	defer os.RemoveAll(dir)

	// In production: tp, err := tracing.NewProvider(ctx, "users").
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))

	app := troupe.New(troupe.Config{Name: "users", DataDir: dir, HTTPAddr: "off",
		Logger: slog.New(slog.DiscardHandler)})
	app.Service("users").Publishes(userSignedUp)
	troupe.Subscribe(app.Service("mailer"), userSignedUp, "welcome",
		func(ctx context.Context, ev troupe.Event[signedUp]) error { return nil })
	tracing.Install(app, tp)

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer app.Stop(ctx)
	if err := troupe.Publish(app.Context(ctx), userSignedUp, signedUp{Email: "ada@example.com"}); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(rec.Ended()) < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	spans := rec.Ended()
	sort.Slice(spans, func(i, j int) bool { return spans[i].StartTime().Before(spans[j].StartTime()) })
	byID := map[string]string{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s.Name()
	}
	for _, s := range spans {
		parent := byID[s.Parent().SpanID().String()]
		if parent == "" {
			parent = "(root)"
		}
		fmt.Printf("%s (%s), parent %s\n", s.Name(), s.SpanKind(), parent)
	}
	// Output:
	// send user_signed_up.v1 (producer), parent (root)
	// process user_signed_up.v1 (consumer), parent send user_signed_up.v1
}

// A program's main installs tracing from the standard OpenTelemetry
// environment variables; the spans of the last handlers are flushed when
// the app stops.
func ExampleInstallFromEnv() {
	app := troupe.New(troupe.Config{Name: "shop"})
	// ... services and subscriptions ...
	if _, err := tracing.InstallFromEnv(context.Background(), app); err != nil {
		log.Fatal(err) // for example OTEL_EXPORTER_OTLP_PROTOCOL=grpc
	}
	app.Main()
}
