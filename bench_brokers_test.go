package troupe_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// BenchmarkBrokers puts troupe beside the raw client of each external broker
// (nats.go and amqp091-go) in one run: publish with confirms and
// handle+ack, 256-byte events, the same broker and durability for both.
//
//	go test -run '^$' -bench Brokers -benchtime 20000x -count 3 .
//
// A broker that is not running is skipped.
func BenchmarkBrokers(b *testing.B) {
	const (
		natsURL = "nats://127.0.0.1:4222"
		amqpURL = "amqp://guest:guest@127.0.0.1:5672/"
	)
	b.Run("nats", func(b *testing.B) {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			b.Skipf("no NATS at %s: %v", natsURL, err)
		}
		defer nc.Close()
		b.Run("publish/raw", func(b *testing.B) { rawNATSPublish(b, nc, false) })
		b.Run("publish/troupe", func(b *testing.B) { troupePublish(b, natsURL, func(ns string) { deleteStreams(nc, ns) }) })
		b.Run("consume/raw", func(b *testing.B) { rawNATSPublish(b, nc, true) })
		b.Run("consume/troupe", func(b *testing.B) { troupeConsume(b, natsURL, func(ns string) { deleteStreams(nc, ns) }) })
	})
	b.Run("rabbitmq", func(b *testing.B) {
		conn, err := amqp.Dial(amqpURL)
		if err != nil {
			b.Skipf("no RabbitMQ at 127.0.0.1:5672: %v", err)
		}
		defer conn.Close()
		cleanup := func(ns string) { deleteRabbitNamespace(conn, ns, "svc", "sink") }
		b.Run("publish/raw", func(b *testing.B) { rawAMQPPublish(b, conn, false) })
		b.Run("publish/troupe", func(b *testing.B) { troupePublish(b, amqpURL, cleanup) })
		b.Run("consume/raw", func(b *testing.B) { rawAMQPPublish(b, conn, true) })
		b.Run("consume/troupe", func(b *testing.B) { troupeConsume(b, amqpURL, cleanup) })
	})
}

func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// troupePublish publishes with publishParallel on broker. A subscription is
// declared (RabbitMQ drops what no queue receives) but not consumed here.
func troupePublish(b *testing.B, broker string, cleanup func(ns string)) {
	ns := uniqueName("bench")
	b.Cleanup(func() { cleanup(ns) }) // registered first, so it runs after the app stopped
	a := benchApp(b, troupe.Config{Name: ns, Broker: broker, Services: []string{"idle"}}, func(a *troupe.App, s *troupe.Service) {
		troupe.Subscribe(s, benchTopic, "sink", func(context.Context, troupe.Event[benchEvent]) error { return nil })
		a.Service("idle") // the only service this process runs
	})
	publishParallel(b, a)
}

// troupeConsume times consumeAll on broker.
func troupeConsume(b *testing.B, broker string, cleanup func(ns string)) {
	ns := uniqueName("bench")
	b.Cleanup(func() { cleanup(ns) })
	consumeAll(b, troupe.Config{Name: ns, Broker: broker})
}

// rawNATSPublish publishes b.N bare 256-byte messages with async publish
// and waits for every ack; with consume, it then times a durable pull
// consumer handling and acking them all.
func rawNATSPublish(b *testing.B, nc *nats.Conn, consume bool) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	name := uniqueName("RAWBENCH")
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Duplicates: 2 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), name) }()
	payload := []byte(`{"body":"` + benchBody + `"}`)
	if !consume {
		b.SetBytes(256)
		b.ResetTimer()
	}
	for range b.N {
		if _, err := js.PublishAsync(name+".bench", payload); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatal("confirms did not arrive")
	}
	if consume {
		c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 100_000})
		if err != nil {
			b.Fatal(err)
		}
		var n atomic.Int64
		done := make(chan struct{})
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
	}
	reportRate(b)
}

// rawAMQPPublish publishes b.N persistent 256-byte messages to a quorum
// queue with pipelined confirms (up to 1,000 unconfirmed); with consume, it
// then times a consumer with manual acks and a prefetch of 264 (troupe's
// default budget) handling them all.
func rawAMQPPublish(b *testing.B, conn *amqp.Connection, consume bool) {
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	q := uniqueName("rawbench.")
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if c, err := conn.Channel(); err == nil {
			_, _ = c.QueueDelete(q, false, false, false)
			c.Close()
		}
	}()
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"body":"` + benchBody + `"}`)
	ctx := context.Background()
	if !consume {
		b.SetBytes(256)
		b.ResetTimer()
	}
	window := make([]*amqp.DeferredConfirmation, 0, 1000)
	flush := func() {
		for _, dc := range window {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				b.Fatalf("not confirmed: %v", err)
			}
		}
		window = window[:0]
	}
	for range b.N {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: payload})
		if err != nil {
			b.Fatal(err)
		}
		if window = append(window, dc); len(window) == cap(window) {
			flush()
		}
	}
	flush()
	if consume {
		cch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		defer cch.Close()
		if err := cch.Qos(264, 0, false); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		deliveries, err := cch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			d := <-deliveries
			if err := d.Ack(false); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportRate(b)
}

func deleteStreams(nc *nats.Conn, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = natsjs.DeleteNamespace(ctx, nc, ns)
}

// deleteRabbitNamespace removes what an app named ns with one subscription
// declared on RabbitMQ.
func deleteRabbitNamespace(conn *amqp.Connection, ns, service, sub string) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	q := ns + "." + service + "." + sub
	for _, name := range []string{q, q + ".dlq"} {
		_, _ = ch.QueueDelete(name, false, false, false)
	}
	_ = ch.ExchangeDelete("troupe."+ns, false, false)
}
