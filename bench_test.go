package troupe_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// These benchmarks put troupe beside the raw nats.go client on the same
// embedded server, in the same run, with 256-byte events: run them with
//
//	go test -run '^$' -bench . -benchmem -count 5 .
//
// and compare each troupe line with the raw line above it.

type benchEvent struct {
	Body string `json:"body"`
}

var benchTopic = troupe.NewTopic[benchEvent]("bench", 1)

// benchBody makes the JSON encoding of a benchEvent 256 bytes long.
var benchBody = strings.Repeat("x", 256-len(`{"body":""}`))

func BenchmarkPublish(b *testing.B) {
	b.Run("raw-nats-async", func(b *testing.B) {
		srv, nc := benchServer(b)
		_ = srv
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}}); err != nil {
			b.Fatal(err)
		}
		payload := []byte(`{"body":"` + benchBody + `"}`)
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := js.PublishAsync("raw.bench", payload); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("confirms did not arrive")
		}
		reportRate(b)
	})
	b.Run("troupe-batch-100", func(b *testing.B) {
		a := benchApp(b, nil)
		ctx := a.Context(context.Background())
		batch := make([]benchEvent, 100)
		for i := range batch {
			batch[i] = benchEvent{Body: benchBody}
		}
		b.SetBytes(256)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += len(batch) {
			if err := troupe.PublishBatch(ctx, benchTopic, batch[:min(len(batch), b.N-i)]); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	})
	b.Run("troupe-parallel-64", func(b *testing.B) {
		a := benchApp(b, nil)
		ctx := a.Context(context.Background())
		ev := benchEvent{Body: benchBody}
		b.SetBytes(256)
		b.ReportAllocs()
		b.SetParallelism(32) // ×GOMAXPROCS goroutines, each with one publish in flight
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := troupe.Publish(ctx, benchTopic, ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b)
	})
}

// BenchmarkConsume measures handle+ack: b.N events are stored first, then the
// clock runs while a consumer handles them all.
func BenchmarkConsume(b *testing.B) {
	b.Run("raw-nats-consume", func(b *testing.B) {
		_, nc := benchServer(b)
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}})
		if err != nil {
			b.Fatal(err)
		}
		payload := []byte(`{"body":"` + benchBody + `"}`)
		for range b.N {
			if _, err := js.PublishAsync("raw.bench", payload); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 100_000})
		if err != nil {
			b.Fatal(err)
		}
		var n atomic.Int64
		done := make(chan struct{})
		b.ReportAllocs()
		b.ResetTimer()
		cc, err := c.Consume(func(m jetstream.Msg) {
			_ = m.Ack()
			if n.Add(1) == int64(b.N) {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Stop()
		waitBench(b, done)
		_ = nc.Flush()
		reportRate(b)
	})
	b.Run("troupe-handle", func(b *testing.B) {
		var n atomic.Int64
		done := make(chan struct{})
		total := int64(b.N)
		gate := make(chan struct{})
		a := benchApp(b, func(s *troupe.Service) {
			troupe.Subscribe(s, benchTopic, "sink", func(ctx context.Context, ev troupe.Event[benchEvent]) error {
				<-gate
				if n.Add(1) == total {
					close(done)
				}
				return nil
			}, troupe.Concurrency(8))
		})
		ctx := a.Context(context.Background())
		batch := make([]benchEvent, 500)
		for i := range batch {
			batch[i] = benchEvent{Body: benchBody}
		}
		for i := 0; i < b.N; i += len(batch) {
			if err := troupe.PublishBatch(ctx, benchTopic, batch[:min(len(batch), b.N-i)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		close(gate)
		waitBench(b, done)
		reportRate(b)
	})
}

func benchServer(b *testing.B) (*natsjs.Server, *nats.Conn) {
	b.Helper()
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	nc, err := srv.Conn("bench-raw")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return srv, nc
}

func benchApp(b *testing.B, declare func(*troupe.Service)) *troupe.App {
	b.Helper()
	a := troupe.New(troupe.Config{Name: "bench", DataDir: b.TempDir(), HTTPAddr: "off", Logger: quietLogger()})
	s := a.Service("svc").Publishes(benchTopic)
	if declare != nil {
		declare(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	return a
}

func waitBench(b *testing.B, done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("not all events handled")
	}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
