package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/pkg/amqp"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/nats-io/nats.go"
	"github.com/streadway/amqp"
)

// Watermill is configured to match troupe's guarantees as closely as its
// adapters allow:
//
//   - NATS (watermill-nats v2, package nats with JetStream on, the one its
//     authors recommend): file-backed stream per topic (created up front,
//     not on every publish), a synchronous JetStream publish per message
//     (it returns after the server's ack), message ids for dedup
//     (TrackMsgId, as troupe sends Nats-Msg-Id), a durable queue consumer
//     with explicit manual acks, 8 subscribers (troupe's Concurrency).
//   - AMQP (watermill-amqp v1.1.4, the newest release the Go module proxy
//     serves here; v3 with publisher confirms is not available): persistent
//     messages to a durable quorum queue; Transactional publishing, the
//     adapter's only way to learn the broker stored a message; 8 Subscribe
//     calls on the queue (each one handles one message at a time), each with
//     a prefetch of 33, 264 in all.

// watermillNATSPubSub builds the NATS JetStream adapter's publisher and
// subscriber, each on its own connection from dial.
func watermillNATSPubSub(dial func() (*nats.Conn, error)) (*wmnats.Publisher, *wmnats.Subscriber, error) {
	js := wmnats.JetStreamConfig{
		AutoProvision:    true, // on the subscriber only: SubscribeInitialize creates the stream
		TrackMsgId:       true,
		AckAsync:         true,
		DurablePrefix:    "wm",
		SubscribeOptions: []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit(), nats.ManualAck(), nats.MaxAckPending(100_000)},
		DurableCalculator: func(prefix, topic string) string {
			return prefix + "_" + topic
		},
	}
	pc, err := dial()
	if err != nil {
		return nil, nil, err
	}
	pjs := js
	pjs.AutoProvision = false
	pub, err := wmnats.NewPublisherWithNatsConn(pc, wmnats.PublisherPublishConfig{
		Marshaler: &wmnats.NATSMarshaler{}, SubjectCalculator: wmnats.DefaultSubjectCalculator, JetStream: pjs,
	}, watermill.NopLogger{})
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	sc, err := dial()
	if err != nil {
		_ = pub.Close()
		return nil, nil, err
	}
	sub, err := wmnats.NewSubscriberWithNatsConn(sc, wmnats.SubscriberSubscriptionConfig{
		Unmarshaler: &wmnats.NATSMarshaler{}, SubscribersCount: workers, QueueGroupPrefix: "wm",
		AckWaitTimeout: 30 * time.Second, CloseTimeout: 5 * time.Second, JetStream: js,
	}, watermill.NopLogger{})
	if err != nil {
		_ = pub.Close()
		sc.Close()
		return nil, nil, err
	}
	return pub, sub, nil
}

// deleteStream removes a stream through a connection from dial.
func deleteStream(dial func() (*nats.Conn, error), names ...string) {
	nc, err := dial()
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return
	}
	for _, n := range names {
		_ = js.DeleteStream(n)
	}
}

func watermillNATSThroughput(ctx context.Context, dial func() (*nats.Conn, error), n int) (Metrics, error) {
	pub, sub, err := watermillNATSPubSub(dial)
	if err != nil {
		return nil, err
	}
	topic := unique("wmbench_")
	defer deleteStream(dial, topic)
	defer pub.Close()
	defer sub.Close()
	if err := sub.SubscribeInitialize(topic); err != nil {
		return nil, err
	}
	return watermillThroughput(ctx, n, func(k int) error { return pub.Publish(topic, wmBatch(k)...) },
		func(ctx context.Context) ([]<-chan *message.Message, error) {
			ch, err := sub.Subscribe(ctx, topic)
			return []<-chan *message.Message{ch}, err
		})
}

func watermillAMQPThroughput(ctx context.Context, url string, n int) (Metrics, error) {
	cfg := wmamqp.NewDurableQueueConfig(url)
	cfg.Queue.Arguments = amqp.Table{"x-queue-type": "quorum"}
	cfg.Publish.Transactional = true
	cfg.Consume.Qos.PrefetchCount = prefetch / workers
	pub, err := wmamqp.NewPublisher(cfg, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	sub, err := wmamqp.NewSubscriber(cfg, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	topic := unique("wmbench.")
	defer func() {
		if c, err := amqp.Dial(url); err == nil {
			if ch, err := c.Channel(); err == nil {
				_, _ = ch.QueueDelete(topic, false, false, false)
			}
			c.Close()
		}
	}()
	if err := sub.SubscribeInitialize(topic); err != nil {
		return nil, err
	}
	return watermillThroughput(ctx, n, func(k int) error { return pub.Publish(topic, wmBatch(k)...) },
		func(ctx context.Context) ([]<-chan *message.Message, error) {
			var chans []<-chan *message.Message
			for range workers {
				ch, err := sub.Subscribe(ctx, topic)
				if err != nil {
					return nil, err
				}
				chans = append(chans, ch)
			}
			return chans, nil
		})
}

func wmBatch(k int) []*message.Message {
	msgs := make([]*message.Message, k)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), benchPayload)
		msgs[i].Metadata.Set("content-type", "application/json")
	}
	return msgs
}

// watermillThroughput publishes n messages with publish (timed), then
// subscribes and acks them all with workers goroutines reading the
// subscriptions' channels (timed).
func watermillThroughput(ctx context.Context, n int, publish func(k int) error,
	subscribe func(context.Context) ([]<-chan *message.Message, error)) (Metrics, error) {
	start := time.Now()
	if err := parallelBatches(n, publish); err != nil {
		return nil, err
	}
	pubRate := float64(n) / time.Since(start).Seconds()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start = time.Now()
	chans, err := subscribe(sctx)
	if err != nil {
		return nil, err
	}
	var got, bad atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i := range workers {
		ch := chans[i%len(chans)]
		wg.Go(func() {
			for {
				select {
				case m, ok := <-ch:
					if !ok {
						return
					}
					if !handleBench(m.Payload) {
						bad.Add(1)
					}
					m.Ack()
					if got.Add(1) >= int64(n) {
						once.Do(func() { close(done) })
					}
				case <-sctx.Done():
					return
				}
			}
		})
	}
	err = waitProgress(ctx, done, got.Load, time.Minute)
	rate := float64(n) / time.Since(start).Seconds()
	cancel()
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("consume: %w (of %d)", err, n)
	}
	if err := undecoded(bad.Load()); err != nil {
		return nil, err
	}
	return Metrics{"publish": pubRate, "consume": rate}, nil
}

// goChannelThroughput passes n messages through Watermill's in-memory
// GoChannel from the same publishers to the same workers: a reference for
// the cost of the library without a broker. Nothing is durable, so it is
// reported as one pass-through rate, under consume.
func goChannelThroughput(ctx context.Context, n int) (Metrics, error) {
	gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: prefetch}, watermill.NopLogger{})
	defer gc.Close()
	m, err := watermillPassThrough(ctx, n, gc)
	if err != nil {
		return nil, err
	}
	return Metrics{"consume": m}, nil
}

func watermillPassThrough(ctx context.Context, n int, gc *gochannel.GoChannel) (float64, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := gc.Subscribe(sctx, "bench")
	if err != nil {
		return 0, err
	}
	var got, bad atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	for range workers {
		go func() {
			for m := range ch {
				if !handleBench(m.Payload) {
					bad.Add(1)
				}
				m.Ack()
				if got.Add(1) >= int64(n) {
					once.Do(func() { close(done) })
				}
			}
		}()
	}
	start := time.Now()
	if err := parallelBatches(n, func(k int) error { return gc.Publish("bench", wmBatch(k)...) }); err != nil {
		return 0, err
	}
	if err := waitDone(ctx, done, 5*time.Minute); err != nil {
		return 0, errors.New("gochannel: not all messages arrived")
	}
	rate := float64(n) / time.Since(start).Seconds()
	return rate, undecoded(bad.Load())
}
