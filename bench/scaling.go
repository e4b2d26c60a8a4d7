package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// Scenario 3a: how troupe's consume throughput changes as one topic gets
// more subscriptions (fan-out) and as the same events spread over more
// topics (one subscription each). troupe alone, on the embedded server.

func scalingPlan(e *env) []*Measure {
	var out []*Measure
	for _, k := range e.subsPoints {
		out = append(out, &Measure{Scenario: "scaling", Broker: "embedded", Case: fmt.Sprintf("subscriptions per topic: %d", k),
			Client: "troupe", Runs: e.o.runs, Run: func(ctx context.Context) (Metrics, error) {
				return scalingRun(ctx, e, 1, k, e.scalingEvents)
			}})
	}
	for _, t := range e.topicPoints {
		out = append(out, &Measure{Scenario: "scaling", Broker: "embedded", Case: fmt.Sprintf("topics: %s", Int(t)),
			Client: "troupe", Runs: e.o.runs, Run: func(ctx context.Context) (Metrics, error) {
				return scalingRun(ctx, e, t, 1, e.scalingEvents)
			}})
	}
	return out
}

// scalingRun publishes n events spread evenly over nTopics topics, each with
// nSubs subscriptions already consuming, and times from the first publish
// to the last delivery handled. (A stored backlog and a gate, as in the
// throughput scenario, would measure nothing with many topics: the
// prefetch of a thousand subscriptions holds the whole backlog before the
// clock starts.)
func scalingRun(ctx context.Context, e *env, nTopics, nSubs, n int) (Metrics, error) {
	perTopic := max(1, n/nTopics)
	n = perTopic * nTopics
	ns := unique("scale")
	tr, err := e.srv.Connect(ctx, natsjs.Config{Namespace: ns, Logger: quiet})
	if err != nil {
		return nil, err
	}
	defer func() {
		deleteTroupeStreams(tr.Conn(), ns)
		_ = tr.Close(context.Background())
	}()
	topics := make([]*troupe.Topic[benchEvent], nTopics)
	for i := range topics {
		topics[i] = troupe.NewTopic[benchEvent](fmt.Sprintf("t%d", i), 1)
	}
	total := int64(n * nSubs)
	var handled atomic.Int64
	done := make(chan struct{})
	h := func(ctx context.Context, ev troupe.Event[benchEvent]) error {
		if handled.Add(1) == total {
			close(done)
		}
		return nil
	}
	a := troupe.New(troupe.Config{Name: ns, Transport: tr, HTTPAddr: "off", Logger: quiet})
	pub, sink := a.Service("pub"), a.Service("sink")
	for ti, t := range topics {
		pub.Publishes(t)
		for s := range nSubs {
			troupe.Subscribe(sink, t, fmt.Sprintf("t%d-s%d", ti, s), h)
		}
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	defer stopApp(a)
	pctx := a.Context(ctx)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, publishers)
	for range publishers {
		wg.Go(func() {
			for {
				ti := int(next.Add(1)) - 1
				if ti >= nTopics {
					return
				}
				for sent := 0; sent < perTopic; sent += batchSize {
					batch := make([]benchEvent, min(batchSize, perTopic-sent))
					for i := range batch {
						batch[i] = benchEvent{Body: benchBody}
					}
					if err := troupe.PublishBatch(pctx, topics[ti], batch); err != nil {
						errc <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	if err := waitProgress(ctx, done, handled.Load, time.Minute); err != nil {
		return nil, fmt.Errorf("%w (of %d deliveries)", err, total)
	}
	return Metrics{"rate": float64(total) / time.Since(start).Seconds(), "events": float64(n)}, nil
}
