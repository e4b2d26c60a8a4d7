package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/nats-io/nats.go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// Scenario 2: the shop's order flow, written here once per library so both
// sides do the same work: four handlers, each decoding the previous step's
// event and publishing the next one.

// flowOrder is the one document that travels through every step, as the
// shop's events carry the order's id and what the next step needs.
type flowOrder struct {
	OrderID  int64  `json:"order_id"`
	Customer string `json:"customer"`
	SKU      string `json:"sku"`
	Qty      int    `json:"qty"`
	Amount   int64  `json:"amount_cents"`
	Step     string `json:"step"`
	Start    int64  `json:"start_unix_nano"` // when the order was placed, for the latency
}

var (
	flowPlaced   = troupe.NewTopic[flowOrder]("order_placed", 1)
	flowPaid     = troupe.NewTopic[flowOrder]("payment_succeeded", 1)
	flowReserved = troupe.NewTopic[flowOrder]("inventory_reserved", 1)
	flowShipped  = troupe.NewTopic[flowOrder]("order_shipped", 1)
)

// flowSystem is one library's version of the flow: publish places an
// order; the system calls finished when the notification handler ran.
type flowSystem struct {
	publish func(ctx context.Context, o flowOrder) error
	stop    func()
}

type flowStarter func(ctx context.Context, finished func(flowOrder)) (*flowSystem, error)

func flowPlan(e *env) []*Measure {
	clients := []struct {
		name  string
		start flowStarter
	}{
		{"troupe", func(ctx context.Context, fin func(flowOrder)) (*flowSystem, error) { return troupeFlow(ctx, e, fin) }},
		{"watermill (NATS JetStream, same embedded server)", func(ctx context.Context, fin func(flowOrder)) (*flowSystem, error) {
			return watermillNATSFlow(ctx, e.embeddedConn, fin)
		}},
		{"watermill (GoChannel, in memory, reference)", watermillGoChannelFlow},
	}
	var out []*Measure
	for _, load := range []string{"saturated", "paced"} {
		for _, c := range clients {
			cas := fmt.Sprintf("saturated, %s in flight", Int(e.flowInFlight))
			if load == "paced" {
				cas = fmt.Sprintf("paced, 1,000/s for %s", e.flowPaced)
			}
			out = append(out, &Measure{Scenario: "flow", Broker: "embedded", Case: cas, Client: c.name, Runs: e.o.runs,
				Run: func(ctx context.Context) (Metrics, error) {
					if load == "paced" {
						return runFlow(ctx, c.start, int(e.flowPaced/time.Millisecond), 0, time.Millisecond)
					}
					return runFlow(ctx, c.start, e.flowOrders, e.flowInFlight, 0)
				}})
		}
	}
	return out
}

// runFlow places total orders, either keeping inFlight of them in flight
// (every places as soon as one finishes) or one every interval, and
// measures the rate of finished orders and their latencies.
func runFlow(ctx context.Context, start flowStarter, total, inFlight int, interval time.Duration) (Metrics, error) {
	var (
		mu      sync.Mutex
		lat     = make([]time.Duration, 0, total)
		seen    = make([]atomic.Bool, total)
		left    atomic.Int64
		allDone = make(chan struct{})
		sem     chan struct{}
	)
	left.Store(int64(total))
	if inFlight > 0 {
		sem = make(chan struct{}, inFlight)
	}
	finished := func(o flowOrder) {
		if o.OrderID < 0 || int(o.OrderID) >= total || seen[o.OrderID].Swap(true) {
			return // a redelivery: count each order once
		}
		d := time.Duration(time.Now().UnixNano() - o.Start)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		if sem != nil {
			<-sem
		}
		if left.Add(-1) == 0 {
			close(allDone)
		}
	}
	sys, err := start(ctx, finished)
	if err != nil {
		return nil, err
	}
	defer sys.stop()

	order := func(i int) flowOrder {
		return flowOrder{OrderID: int64(i), Customer: "ada", SKU: "book", Qty: 2, Amount: 4200, Step: "placed", Start: time.Now().UnixNano()}
	}
	errc := make(chan error, 1)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	began := time.Now()
	var wg sync.WaitGroup
	if inFlight > 0 {
		var next atomic.Int64
		for range publishers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					select {
					case sem <- struct{}{}:
					case <-ctx.Done():
						return
					}
					if err := sys.publish(ctx, order(i)); err != nil {
						fail(err)
						return
					}
				}
			})
		}
	} else {
		for i := range total {
			if d := time.Until(began.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			wg.Go(func() {
				if err := sys.publish(ctx, order(i)); err != nil {
					fail(err)
				}
			})
		}
	}
	select {
	case <-allDone:
	case err := <-errc:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(5 * time.Minute):
		return nil, fmt.Errorf("%d of %d orders did not finish", left.Load(), total)
	}
	elapsed := time.Since(began)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Metrics{
		"rate": float64(total) / elapsed.Seconds(),
		"p50":  ms(Percentile(lat, 50)), "p99": ms(Percentile(lat, 99)), "p999": ms(Percentile(lat, 99.9)),
	}, nil
}

// troupeFlow declares the flow as four services on the embedded server,
// each subscription with troupe's defaults.
func troupeFlow(ctx context.Context, e *env, finished func(flowOrder)) (*flowSystem, error) {
	ns := unique("flow")
	tr, err := e.srv.Connect(ctx, natsjs.Config{Namespace: ns, Logger: quiet})
	if err != nil {
		return nil, err
	}
	a := troupe.New(troupe.Config{Name: ns, Transport: tr, HTTPAddr: "off", Logger: quiet})
	a.Service("orders").Publishes(flowPlaced)
	step := func(svc string, in, out *troupe.Topic[flowOrder], name string) {
		troupe.Subscribe(a.Service(svc).Publishes(out), in, name, func(ctx context.Context, ev troupe.Event[flowOrder]) error {
			o := ev.Data
			o.Step = name
			return troupe.Publish(ctx, out, o)
		}, troupe.Emits(out))
	}
	step("payment", flowPlaced, flowPaid, "charge")
	step("inventory", flowPaid, flowReserved, "reserve")
	step("shipping", flowReserved, flowShipped, "ship")
	troupe.Subscribe(a.Service("notification"), flowShipped, "notify", func(ctx context.Context, ev troupe.Event[flowOrder]) error {
		finished(ev.Data)
		return nil
	})
	cleanup := func() {
		deleteTroupeStreams(tr.Conn(), ns)
		_ = tr.Close(context.Background())
	}
	if err := a.Start(ctx); err != nil {
		cleanup()
		return nil, err
	}
	pctx := a.Context(context.Background())
	return &flowSystem{
		publish: func(ctx context.Context, o flowOrder) error { return troupe.Publish(pctx, flowPlaced, o) },
		stop:    func() { stopApp(a); cleanup() },
	}, nil
}

// watermillFlow declares the same four handlers on a Watermill router over
// pub and sub, with topics named by prefix.
func watermillFlow(ctx context.Context, pub message.Publisher, sub message.Subscriber, prefix string, finished func(flowOrder)) (*flowSystem, error) {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	t := func(name string) string { return prefix + name }
	step := func(name, in, out string) {
		router.AddHandler(name, t(in), sub, t(out), pub, func(msg *message.Message) ([]*message.Message, error) {
			var o flowOrder
			if err := json.Unmarshal(msg.Payload, &o); err != nil {
				return nil, err
			}
			o.Step = name
			b, err := json.Marshal(o)
			if err != nil {
				return nil, err
			}
			return []*message.Message{message.NewMessage(watermill.NewUUID(), b)}, nil
		})
	}
	step("charge", "order_placed", "payment_succeeded")
	step("reserve", "payment_succeeded", "inventory_reserved")
	step("ship", "inventory_reserved", "order_shipped")
	router.AddConsumerHandler("notify", t("order_shipped"), sub, func(msg *message.Message) error {
		var o flowOrder
		if err := json.Unmarshal(msg.Payload, &o); err != nil {
			return err
		}
		finished(o)
		return nil
	})
	rctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(rctx) }()
	select {
	case <-router.Running():
	case err := <-runErr:
		cancel()
		return nil, fmt.Errorf("watermill router: %w", err)
	case <-time.After(time.Minute):
		cancel()
		return nil, errors.New("watermill router did not start")
	}
	return &flowSystem{
		publish: func(ctx context.Context, o flowOrder) error {
			b, err := json.Marshal(o)
			if err != nil {
				return err
			}
			return pub.Publish(t("order_placed"), message.NewMessage(watermill.NewUUID(), b))
		},
		stop: func() { cancel(); <-runErr; _ = router.Close() },
	}, nil
}

func watermillNATSFlow(ctx context.Context, dial func() (*nats.Conn, error), finished func(flowOrder)) (*flowSystem, error) {
	pub, sub, err := watermillNATSPubSub(dial)
	if err != nil {
		return nil, err
	}
	prefix := unique("wmflow") + "_"
	topics := []string{"order_placed", "payment_succeeded", "inventory_reserved", "order_shipped"}
	for _, tp := range topics {
		if err := sub.SubscribeInitialize(prefix + tp); err != nil {
			return nil, err
		}
	}
	sys, err := watermillFlow(ctx, pub, sub, prefix, finished)
	if err != nil {
		return nil, err
	}
	stop := sys.stop
	sys.stop = func() {
		stop()
		_ = sub.Close()
		_ = pub.Close()
		var streams []string
		for _, tp := range topics {
			streams = append(streams, prefix+tp)
		}
		deleteStream(dial, streams...)
	}
	return sys, nil
}

func watermillGoChannelFlow(ctx context.Context, finished func(flowOrder)) (*flowSystem, error) {
	gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: prefetch}, watermill.NopLogger{})
	sys, err := watermillFlow(ctx, gc, gc, "", finished)
	if err != nil {
		return nil, err
	}
	stop := sys.stop
	sys.stop = func() { stop(); _ = gc.Close() }
	return sys, nil
}
