package tracing_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/metrics"
	"github.com/troupe-go/troupe/tracing"
)

// BenchmarkOverhead measures what observability costs on the embedded
// broker's round trip (publish, confirm, deliver, handle, ack), each setup
// in the same run so their ratios can be read off one output:
//
//	go test -run '^$' -bench Overhead -benchtime 2000x -count 3 ./tracing/
//
// "roundtrip" publishes one event and waits for its handler; "batch-100"
// publishes 100 at once and waits for all, which shows the CPU cost per
// event better, since the broker's latency is shared.
func BenchmarkOverhead(b *testing.B) {
	setups := []struct {
		name    string
		install func(*troupe.App)
	}{
		{"none", func(*troupe.App) {}},
		{"metrics", func(a *troupe.App) {
			if err := metrics.Install(a, metrics.WithPath("")); err != nil {
				b.Fatal(err)
			}
		}},
		{"tracing-always", func(a *troupe.App) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(discard{}))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			tracing.Install(a, tp)
		}},
		{"tracing-never", func(a *troupe.App) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithBatcher(discard{}))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			tracing.Install(a, tp)
		}},
	}
	for _, batch := range []int{1, 100} {
		mode := "roundtrip"
		if batch > 1 {
			mode = "batch-100"
		}
		for _, s := range setups {
			b.Run(mode+"/"+s.name, func(b *testing.B) {
				a, handled := overheadApp(b, s.install)
				ctx := a.Context(context.Background())
				evs := make([]benchEvent, batch)
				for i := range evs {
					evs[i] = benchEvent{Body: strings.Repeat("x", 245)}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					n := min(batch, b.N-i)
					if err := troupe.PublishBatch(ctx, benchTopic, evs[:n]); err != nil {
						b.Fatal(err)
					}
					for range n {
						select {
						case <-handled:
						case <-time.After(30 * time.Second):
							b.Fatal("event not handled")
						}
					}
				}
			})
		}
	}
}

type benchEvent struct {
	Body string `json:"body"`
}

var benchTopic = troupe.NewTopic[benchEvent]("bench", 1)

func overheadApp(b *testing.B, install func(*troupe.App)) (*troupe.App, <-chan struct{}) {
	a := troupe.New(troupe.Config{Name: "overhead", DataDir: b.TempDir(), HTTPAddr: "off",
		Logger: slog.New(slog.DiscardHandler)})
	a.Service("pub").Publishes(benchTopic)
	handled := make(chan struct{}, 1024)
	troupe.Subscribe(a.Service("sub"), benchTopic, "handle",
		func(context.Context, troupe.Event[benchEvent]) error {
			handled <- struct{}{}
			return nil
		})
	install(a)
	ctx := context.Background()
	if err := a.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Stop(context.Background()) })
	return a, handled
}

// discard is an exporter that drops what it is given: the cost measured is
// troupe's and the SDK's, not a collector's.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
