package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// Scenario 1: publish throughput (durable, confirmed) and consume throughput
// (handle + ack) of 256-byte events. Every client publishes from the same
// shape of caller where its API allows: troupe and Watermill from 8
// goroutines, each sending batches of 100 and waiting for them; the raw
// clients from one goroutine with pipelined confirms, which is how those
// clients are fastest. troupe and Watermill consume with 8 concurrent
// handlers (troupe's default); the raw clients ack in one goroutine, as
// fast as it goes. The prefetch is 264 (troupe's default Concurrency +
// Prefetch) where the client has one.

const (
	publishers = 8   // concurrent publishing goroutines (troupe, Watermill)
	batchSize  = 100 // events per publish call (troupe, Watermill)
	workers    = 8   // concurrent handlers (troupe's default Concurrency)
	prefetch   = 264 // troupe's default Concurrency+Prefetch
)

type benchEvent struct {
	Body string `json:"body"`
}

var benchTopic = troupe.NewTopic[benchEvent]("bench", 1)

// benchBody makes the JSON encoding of a benchEvent 256 bytes long; every
// client sends that same JSON document.
var (
	benchBody    = strings.Repeat("x", 256-len(`{"body":""}`))
	benchPayload = []byte(`{"body":"` + benchBody + `"}`)
)

func throughputPlan(e *env) []*Measure {
	var out []*Measure
	add := func(broker, client string, n int, run func(context.Context, int) (Metrics, error)) {
		if !strings.Contains(","+e.o.brokers+",", ","+broker+",") {
			return
		}
		out = append(out, &Measure{Scenario: "throughput", Broker: broker, Case: Int(n) + " events",
			Client: client, Runs: e.o.runs, Run: func(ctx context.Context) (Metrics, error) { return run(ctx, n) }})
	}
	// Embedded: one in-process server for the three clients.
	add("embedded", "troupe", e.nEmbedded, func(ctx context.Context, n int) (Metrics, error) {
		return troupeThroughput(ctx, e, "embedded", n)
	})
	add("embedded", "watermill", e.nEmbedded, func(ctx context.Context, n int) (Metrics, error) {
		return watermillNATSThroughput(ctx, e.embeddedConn, n)
	})
	for _, h := range []rawHeaders{rawBare, rawMsgID, rawTroupe} {
		add("embedded", h.client(), e.nEmbedded, func(ctx context.Context, n int) (Metrics, error) {
			return rawNATSThroughput(ctx, e.embeddedConn, n, h)
		})
	}
	add("embedded", "watermill-gochannel", e.nEmbedded, func(ctx context.Context, n int) (Metrics, error) {
		return goChannelThroughput(ctx, n)
	})
	if e.amqpOK {
		add("rabbitmq", "troupe", e.nRabbit, func(ctx context.Context, n int) (Metrics, error) {
			return troupeThroughput(ctx, e, "rabbitmq", n)
		})
		add("rabbitmq", "watermill", e.nRabbit, func(ctx context.Context, n int) (Metrics, error) {
			return watermillAMQPThroughput(ctx, e.o.amqpURL, n)
		})
		add("rabbitmq", "raw", e.nRabbit, func(ctx context.Context, n int) (Metrics, error) {
			return rawAMQPThroughput(ctx, e.o.amqpURL, n)
		})
	}
	if e.natsOK {
		dial := func() (*nats.Conn, error) { return nats.Connect(e.o.natsURL) }
		add("nats", "troupe", e.nNATS, func(ctx context.Context, n int) (Metrics, error) {
			return troupeThroughput(ctx, e, "nats", n)
		})
		add("nats", "watermill", e.nNATS, func(ctx context.Context, n int) (Metrics, error) {
			return watermillNATSThroughput(ctx, dial, n)
		})
		for _, h := range []rawHeaders{rawBare, rawMsgID, rawTroupe} {
			add("nats", h.client(), e.nNATS, func(ctx context.Context, n int) (Metrics, error) {
				return rawNATSThroughput(ctx, dial, n, h)
			})
		}
	}
	return out
}

// quiet is the logger of every troupe app in the benchmark.
var quiet = slog.New(slog.DiscardHandler)

// troupeBroker returns the app config for broker under namespace ns, and a
// cleanup that removes what the run left on the broker.
func troupeBroker(ctx context.Context, e *env, broker, ns string) (troupe.Config, func(), error) {
	cfg := troupe.Config{Name: ns, HTTPAddr: "off", Logger: quiet}
	switch broker {
	case "embedded":
		tr, err := e.srv.Connect(ctx, natsjs.Config{Namespace: ns, Logger: quiet})
		if err != nil {
			return cfg, nil, err
		}
		cfg.Transport = tr
		return cfg, func() {
			deleteTroupeStreams(tr.Conn(), ns)
			_ = tr.Close(context.Background())
		}, nil
	case "nats":
		cfg.Broker = e.o.natsURL
		return cfg, func() {
			if nc, err := nats.Connect(e.o.natsURL); err == nil {
				deleteTroupeStreams(nc, ns)
				nc.Close()
			}
		}, nil
	case "rabbitmq":
		cfg.Broker = e.o.amqpURL
		return cfg, func() { deleteTroupeRabbit(e.o.amqpURL, ns) }, nil
	}
	return cfg, nil, fmt.Errorf("unknown broker %q", broker)
}

// troupeThroughput publishes n events (timed), then consumes them (timed) in
// a second app of the same namespace that runs only the subscriber.
func troupeThroughput(ctx context.Context, e *env, broker string, n int) (Metrics, error) {
	ns := unique("bench")
	cfg, cleanup, err := troupeBroker(ctx, e, broker, ns)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	var handled atomic.Int64
	done := make(chan struct{})
	gate := make(chan struct{})
	declare := func(services ...string) *troupe.App {
		c := cfg
		c.Services = services
		a := troupe.New(c)
		a.Service("pub").Publishes(benchTopic)
		troupe.Subscribe(a.Service("sink"), benchTopic, "sink", func(ctx context.Context, ev troupe.Event[benchEvent]) error {
			<-gate
			if handled.Add(1) == int64(n) {
				close(done)
			}
			return nil
		})
		return a
	}

	pub := declare("pub") // declares the subscription, consumes nothing
	if err := pub.Start(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	err = troupePublishParallel(pub.Context(ctx), n)
	pubRate := float64(n) / time.Since(start).Seconds()
	stopApp(pub)
	if err != nil {
		return nil, err
	}

	sink := declare("sink")
	if err := sink.Start(ctx); err != nil {
		return nil, err
	}
	defer stopApp(sink)
	start = time.Now()
	close(gate)
	if err := waitProgress(ctx, done, handled.Load, time.Minute); err != nil {
		return nil, fmt.Errorf("consume: %w (of %d)", err, n)
	}
	return Metrics{"publish": pubRate, "consume": float64(n) / time.Since(start).Seconds()}, nil
}

// troupePublishParallel publishes n benchEvents from publishers goroutines
// in batches of batchSize.
func troupePublishParallel(ctx context.Context, n int) error {
	return parallelBatches(n, func(k int) error {
		batch := make([]benchEvent, k)
		for i := range batch {
			batch[i] = benchEvent{Body: benchBody}
		}
		return troupe.PublishBatch(ctx, benchTopic, batch)
	})
}

// parallelBatches calls send from publishers goroutines until n events have
// been sent in calls of at most batchSize.
func parallelBatches(n int, send func(k int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for range publishers {
		wg.Go(func() {
			for {
				start := int(next.Add(batchSize)) - batchSize
				if start >= n {
					return
				}
				if err := send(min(batchSize, n-start)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func stopApp(a *troupe.App) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = a.Stop(ctx)
}

func waitDone(ctx context.Context, done <-chan struct{}, limit time.Duration) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(limit):
		return errors.New("timed out")
	}
}

// waitProgress waits for done, and fails when count has not moved for
// stall: a consumer that stopped receiving shows up as an error with its
// count instead of a run that never ends.
func waitProgress(ctx context.Context, done <-chan struct{}, count func() int64, stall time.Duration) error {
	last, lastMove := count(), time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if c := count(); c != last {
				last, lastMove = c, time.Now()
			} else if time.Since(lastMove) > stall {
				return fmt.Errorf("stalled for %s after %d deliveries", stall, c)
			}
		}
	}
}

// rawHeaders says what the raw NATS client sends beside the bare payload.
// The rows it makes tell the cost of the wire format from the cost of
// troupe's code: the server parses headers and deduplicates by message id
// whichever client sends them.
type rawHeaders int

const (
	rawBare   rawHeaders = iota // nothing
	rawMsgID                    // only Nats-Msg-Id, which the server deduplicates by
	rawTroupe                   // troupe's CloudEvents headers and Nats-Msg-Id
)

// rawCE names the raw client sending what troupe sends.
const rawCE = "raw + troupe's headers"

func (h rawHeaders) client() string {
	return [...]string{"raw", "raw + message id", rawCE}[h]
}

// rawNATSThroughput publishes n bare payloads (with the headers h says)
// with async publish (up to 16,384 unconfirmed) to a file-backed stream
// with a dedup window like troupe's, then consumes them with a durable pull
// consumer, explicit acks.
func rawNATSThroughput(ctx context.Context, dial func() (*nats.Conn, error), n int, h rawHeaders) (Metrics, error) {
	nc, err := dial()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		return nil, err
	}
	name := unique("RAWBENCH")
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute})
	if err != nil {
		return nil, err
	}
	defer func() { _ = js.DeleteStream(context.Background(), name) }()
	subject := name + ".bench"
	start := time.Now()
	for i := range n {
		m := &nats.Msg{Subject: subject, Data: benchPayload}
		// What troupe's natsjs encoder writes for an event published outside
		// a handler: a UUIDv7-shaped id, used as correlation id and as
		// Nats-Msg-Id.
		var id string
		if h != rawBare {
			id = fmt.Sprintf("0193a5b8-7c1e-7d2f-9a3b-%012x", i)
		}
		switch h {
		case rawMsgID:
			m.Header = nats.Header{jetstream.MsgIDHeader: {id}}
		case rawTroupe:
			m.Header = nats.Header{
				"ce-specversion": {"1.0"}, "ce-id": {id}, "ce-source": {"/bench/pub"}, "ce-type": {"bench.v1"},
				"ce-time": {time.Now().UTC().Format(time.RFC3339Nano)}, "ce-correlationid": {id},
				"content-type": {"application/json"}, jetstream.MsgIDHeader: {id},
			}
		}
		// A full window waits for room (up to 30s) rather than failing after
		// the default 200ms, which a busy server exceeds.
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(30*time.Second)); err != nil {
			return nil, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return nil, errors.New("confirms did not arrive")
	}
	pubRate := float64(n) / time.Since(start).Seconds()

	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 100_000})
	if err != nil {
		return nil, err
	}
	var got atomic.Int64
	done := make(chan struct{})
	start = time.Now()
	cc, err := c.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if got.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(prefetch))
	if err != nil {
		return nil, err
	}
	defer cc.Stop()
	if err := waitProgress(ctx, done, got.Load, time.Minute); err != nil {
		return nil, fmt.Errorf("consume: %w (of %d)", err, n)
	}
	return Metrics{"publish": pubRate, "consume": float64(n) / time.Since(start).Seconds()}, nil
}

// rawAMQPThroughput publishes n persistent messages to a quorum queue (the
// queue type troupe declares) on one channel with pipelined confirms (up to
// 1,000 unconfirmed), then consumes them with manual acks and a prefetch of
// 264.
func rawAMQPThroughput(ctx context.Context, url string, n int) (Metrics, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	q := unique("rawbench.")
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return nil, err
	}
	defer func() {
		if c, err := conn.Channel(); err == nil {
			_, _ = c.QueueDelete(q, false, false, false)
			c.Close()
		}
	}()
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	window := make([]*amqp.DeferredConfirmation, 0, 1000)
	flush := func() error {
		for _, dc := range window {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return fmt.Errorf("not confirmed: %v", err)
			}
		}
		window = window[:0]
		return nil
	}
	start := time.Now()
	for range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: benchPayload})
		if err != nil {
			return nil, err
		}
		if window = append(window, dc); len(window) == cap(window) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	pubRate := float64(n) / time.Since(start).Seconds()
	_ = ch.Close()

	cch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer cch.Close()
	if err := cch.Qos(prefetch, 0, false); err != nil {
		return nil, err
	}
	start = time.Now()
	deliveries, err := cch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	for range n {
		select {
		case d := <-deliveries:
			if err := d.Ack(false); err != nil {
				return nil, err
			}
		case <-time.After(time.Minute):
			return nil, errors.New("consume: no delivery for a minute")
		}
	}
	return Metrics{"publish": pubRate, "consume": float64(n) / time.Since(start).Seconds()}, nil
}

// deleteTroupeStreams removes the streams of troupe namespace ns.
func deleteTroupeStreams(nc *nats.Conn, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = natsjs.DeleteNamespace(ctx, nc, ns)
}

// deleteTroupeRabbit removes the exchange of troupe namespace ns and the
// queues of its subscriptions (listed by the management-free way: the names
// troupe derives, for the services the benchmark declares).
func deleteTroupeRabbit(url, ns string, subs ...string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	if len(subs) == 0 {
		subs = []string{"sink.sink"}
	}
	for _, s := range subs {
		for _, q := range []string{ns + "." + s, ns + "." + s + ".dlq"} {
			ch, err := conn.Channel()
			if err != nil {
				return
			}
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete("troupe."+ns, false, false)
		_ = ch.Close()
	}
}
