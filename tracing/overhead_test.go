package tracing_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/metrics"
	"github.com/troupe-go/troupe/tracing"
	"github.com/troupe-go/troupe/transport"
)

// BenchmarkOverhead measures what observability costs on a publish and its
// handling, each setup in the same run so their ratios can be read off one
// output:
//
//	go test -run '^$' -bench Overhead -benchtime 3000x -count 5 ./tracing/
//
// "loopback" replaces the broker by a transport that hands each published
// event to its handler on the spot, so what is measured is troupe's own
// path (encode, middlewares, decode, handler) without the broker's latency
// and noise: its ratios are the clearest. "roundtrip" does the same on the
// embedded broker (publish, confirm, deliver, handle, ack), one event at a
// time, and "batch-100" publishes 100 at once and waits for all of them.
func BenchmarkOverhead(b *testing.B) {
	for _, s := range overheadSetups(b) {
		if s.broker {
			continue // the loopback transport has no journal
		}
		b.Run("loopback/"+s.name, func(b *testing.B) {
			a := troupe.New(troupe.Config{Name: "overhead", HTTPAddr: "off", Transport: newLoopback(),
				Logger: slog.New(slog.DiscardHandler)})
			handled := 0
			declare(a, func() { handled++ })
			s.install(a)
			start(b, a)
			ctx := a.Context(context.Background())
			ev := benchEvent{Body: strings.Repeat("x", 245)}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := troupe.Publish(ctx, benchTopic, ev); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if handled != b.N {
				b.Fatalf("handled %d of %d", handled, b.N)
			}
		})
	}
	for _, batch := range []int{1, 100} {
		mode := "roundtrip"
		if batch > 1 {
			mode = "batch-100"
		}
		for _, s := range overheadSetups(b) {
			b.Run(mode+"/"+s.name, func(b *testing.B) {
				a := troupe.New(troupe.Config{Name: "overhead", DataDir: b.TempDir(), HTTPAddr: "off",
					Logger: slog.New(slog.DiscardHandler)})
				handled := make(chan struct{}, 1024)
				declare(a, func() { handled <- struct{}{} })
				s.install(a)
				start(b, a)
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

type setup struct {
	name    string
	install func(*troupe.App)
	broker  bool // needs a real broker (the journal writes to it)
}

func overheadSetups(b *testing.B) []setup {
	return []setup{
		{"none", func(*troupe.App) {}, false},
		{"metrics", func(a *troupe.App) {
			if err := metrics.Install(a, metrics.WithPath("")); err != nil {
				b.Fatal(err)
			}
		}, false},
		{"tracing-always", func(a *troupe.App) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(discard{}))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			tracing.Install(a, tp)
		}, false},
		{"tracing-never", func(a *troupe.App) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithBatcher(discard{}))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			tracing.Install(a, tp)
		}, false},
		{"journal", func(a *troupe.App) { journal.Install(a) }, true},
		{"all", func(a *troupe.App) { // metrics, tracing (every span sampled) and the journal
			if err := metrics.Install(a, metrics.WithPath("")); err != nil {
				b.Fatal(err)
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(discard{}))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			tracing.Install(a, tp)
			journal.Install(a)
		}, true},
	}
}

type benchEvent struct {
	Body string `json:"body"`
}

var benchTopic = troupe.NewTopic[benchEvent]("bench", 1)

// declare gives a one service publishing benchTopic and another handling
// it with done.
func declare(a *troupe.App, done func()) {
	a.Service("pub").Publishes(benchTopic)
	troupe.Subscribe(a.Service("sub"), benchTopic, "handle",
		func(context.Context, troupe.Event[benchEvent]) error {
			done()
			return nil
		})
}

func start(b *testing.B, a *troupe.App) {
	if err := a.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Stop(context.Background()) })
}

// discard is an exporter that drops what it is given: the cost measured is
// troupe's and the SDK's, not a collector's.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// loopback is a transport without a broker: Publish calls the handlers of
// the topic's subscriptions at once, on the publishing goroutine, and
// returns their first error. Only for measuring troupe's own path.
type loopback struct {
	mu       sync.Mutex
	handlers map[string][]transport.Handler // by topic name
	fail     error                          // returned by Publish when set, as a broker that refused
}

func newLoopback() *loopback { return &loopback{handlers: make(map[string][]transport.Handler)} }

func (l *loopback) Declare(context.Context, ...transport.Subscription) error { return nil }

func (l *loopback) Publish(ctx context.Context, msgs ...*transport.Message) error {
	if l.fail != nil {
		return l.fail
	}
	for _, m := range msgs {
		topic, _, err := m.Topic()
		if err != nil {
			return err
		}
		l.mu.Lock()
		hs := l.handlers[topic]
		l.mu.Unlock()
		for _, h := range hs {
			if err := h(ctx, &transport.Delivery{Message: *m, Attempt: 1}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *loopback) Consume(_ context.Context, sub transport.Subscription, h transport.Handler) (transport.Consumer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handlers[sub.Topic] = append(l.handlers[sub.Topic], h)
	return stopped{}, nil
}

func (l *loopback) DeadLetters(context.Context, transport.SubscriptionRef, int) ([]transport.DeadLetter, error) {
	return nil, nil
}

func (l *loopback) Replay(context.Context, transport.SubscriptionRef, string) error {
	return transport.ErrNotFound
}

func (l *loopback) Discard(context.Context, transport.SubscriptionRef, string) error {
	return transport.ErrNotFound
}

func (l *loopback) Close(context.Context) error { return nil }

type stopped struct{}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (stopped) Stop(context.Context) error { return nil }
func (stopped) Done() <-chan struct{}      { return closedCh }
