package natsjs_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// BenchmarkTransportConsume measures the transport alone (no decoding, no
// troupe handler), to tell its cost from the troupe layer's in
// the root package's BenchmarkConsume.
func BenchmarkTransportConsume(b *testing.B) {
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	ctx := context.Background()
	tr, err := srv.Connect(ctx, natsjs.Config{Namespace: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close(ctx)
	sub := transport.Subscription{SubscriptionRef: transport.SubscriptionRef{Service: "s", Name: "n"}, Topic: "bench", Concurrency: 8}
	if err := tr.Declare(ctx, sub); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 256)
	msgs := make([]*transport.Message, 0, 500)
	for i := 0; i < b.N; i++ {
		msgs = append(msgs, &transport.Message{ID: fmt.Sprint(i), Type: "bench.v1", Source: "/b", Time: time.Now(), Data: body})
		if len(msgs) == cap(msgs) || i == b.N-1 {
			if err := tr.Publish(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	var n atomic.Int64
	done := make(chan struct{})
	if p := os.Getenv("TROUPE_CONSUME_PROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		_ = pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	b.ReportAllocs()
	b.ResetTimer()
	c, err := tr.Consume(ctx, sub, func(ctx context.Context, d *transport.Delivery) error {
		if n.Add(1) == int64(b.N) {
			close(done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	_ = c.Stop(ctx)
}
