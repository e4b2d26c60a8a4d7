package troupe_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
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

// rawHeaders says which headers a raw nats.go client sends with the bare
// 256-byte payload.
type rawHeaders int

const (
	rawBare  rawHeaders = iota
	rawDedup            // only Nats-Msg-Id: what the server's deduplication costs
	rawCE               // the CloudEvents headers troupe writes, and Nats-Msg-Id
)

// rawMsg is what a raw nats.go client publishes: the bare payload, with the
// headers hdr names (ids, type, source, time, correlation, content type, and
// the id as Nats-Msg-Id for dedup, as troupe writes them).
func rawMsg(i int, hdr rawHeaders) *nats.Msg {
	m := &nats.Msg{Subject: "raw.bench", Data: []byte(`{"body":"` + benchBody + `"}`)}
	if hdr == rawBare {
		return m // no id to format: the bare client pays for nothing it does not send
	}
	id := fmt.Sprintf("0193a5b8-7c1e-7d2f-9a3b-%012x", i)
	switch hdr {
	case rawDedup:
		m.Header = nats.Header{"Nats-Msg-Id": {id}}
	case rawCE:
		m.Header = nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {id}, "ce-source": {"/bench/svc"}, "ce-type": {"bench.v1"},
			"ce-time": {time.Now().UTC().Format(time.RFC3339Nano)}, "ce-correlationid": {id},
			"content-type": {"application/json"}, "Nats-Msg-Id": {id},
		}
	}
	return m
}

// rawStream makes a stream like troupe's events stream (file storage, a
// dedup window) on a fresh embedded server.
func rawStream(b *testing.B) (jetstream.JetStream, jetstream.Stream) {
	_, nc := benchServer(b)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		b.Fatal(err)
	}
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "RAW", Subjects: []string{"raw.>"}, Duplicates: 2 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	return js, s
}

func rawPublish(b *testing.B, js jetstream.JetStream, n int, hdr rawHeaders) {
	for i := range n {
		if _, err := js.PublishMsgAsync(rawMsg(i, hdr)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("confirms did not arrive")
	}
}

func BenchmarkPublish(b *testing.B) {
	for _, hdr := range []rawHeaders{rawBare, rawDedup, rawCE} {
		name := [...]string{"raw-nats-async", "raw-nats-async-msgid", "raw-nats-async-cloudevents"}[hdr]
		b.Run(name, func(b *testing.B) {
			js, _ := rawStream(b)
			b.SetBytes(256)
			b.ReportAllocs()
			b.ResetTimer()
			rawPublish(b, js, b.N, hdr)
			reportRate(b)
		})
	}
	b.Run("troupe-batch-100", func(b *testing.B) {
		a := benchApp(b, troupe.Config{}, nil)
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
	b.Run("troupe-parallel-batch-100", func(b *testing.B) {
		publishParallel(b, benchApp(b, troupe.Config{}, nil))
	})
	b.Run("troupe-parallel-64", func(b *testing.B) {
		a := benchApp(b, troupe.Config{}, nil)
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
	for _, hdr := range []rawHeaders{rawBare, rawCE} {
		name := "raw-nats-consume"
		if hdr == rawCE {
			name += "-cloudevents"
		}
		b.Run(name, func(b *testing.B) {
			js, s := rawStream(b)
			rawPublish(b, js, b.N, hdr)
			c, err := s.CreateConsumer(context.Background(), jetstream.ConsumerConfig{
				Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 100_000})
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
			reportRate(b)
		})
	}
	b.Run("troupe-handle", func(b *testing.B) { consumeAll(b, troupe.Config{}) })
}

func benchServer(b *testing.B) (*natsjs.Server, *nats.Conn) {
	b.Helper()
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

// benchApp starts an app with one service publishing benchTopic, on cfg's
// broker (default: embedded, in a temporary directory), and stops it at the
// end of the benchmark. declare adds subscriptions.
func benchApp(b *testing.B, cfg troupe.Config, declare func(*troupe.App, *troupe.Service)) *troupe.App {
	b.Helper()
	if cfg.Name == "" {
		cfg.Name = "bench"
	}
	if cfg.Broker == "" {
		cfg.DataDir = b.TempDir()
	}
	cfg.HTTPAddr, cfg.Logger = "off", quietLogger()
	a := troupe.New(cfg)
	s := a.Service("svc").Publishes(benchTopic)
	if declare != nil {
		declare(a, s)
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

// publishParallel publishes b.N events from 8 goroutines in batches of 100,
// each batch confirmed before its goroutine sends the next.
func publishParallel(b *testing.B, a *troupe.App) {
	ctx := a.Context(context.Background())
	batch := make([]benchEvent, 100)
	for i := range batch {
		batch[i] = benchEvent{Body: benchBody}
	}
	var next atomic.Int64
	b.SetBytes(256)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				start := int(next.Add(int64(len(batch)))) - len(batch)
				if start >= b.N {
					return
				}
				if err := troupe.PublishBatch(ctx, benchTopic, batch[:min(len(batch), b.N-start)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	reportRate(b)
}

// consumeAll stores b.N events, then times one subscription handling and
// acknowledging them all (its handlers wait at a gate until the clock runs).
func consumeAll(b *testing.B, cfg troupe.Config) {
	var n atomic.Int64
	done := make(chan struct{})
	gate := make(chan struct{})
	total := int64(b.N)
	a := benchApp(b, cfg, func(_ *troupe.App, s *troupe.Service) {
		troupe.Subscribe(s, benchTopic, "sink", func(ctx context.Context, ev troupe.Event[benchEvent]) error {
			<-gate
			if n.Add(1) == total {
				close(done)
			}
			return nil
		})
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
