package natsjs_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// Each topic's events live in a stream of their own; TopicStream finds it,
// and an ordered consumer filtered to TopicSubjects reads the topic's
// history from the first event, as a read model being rebuilt would.
// DeleteNamespace removes every stream of the app afterwards.
func ExampleTransport_TopicStream() {
	dir, _ := os.MkdirTemp("", "natsjs-history")
	defer os.RemoveAll(dir)
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	ctx := context.Background()
	tr, err := srv.Connect(ctx, natsjs.Config{Namespace: "shop"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close(ctx)

	for i, topic := range []string{"orders", "payments", "orders"} {
		m := &transport.Message{ID: fmt.Sprint(topic, "-", i), Type: transport.WireType(topic, 1), Source: "/shop", Time: time.Now(), Data: []byte(`{}`)}
		if err := tr.Publish(ctx, m); err != nil {
			fmt.Println(err)
			return
		}
	}
	s, err := tr.TopicStream(ctx, "orders")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.CachedInfo().Config.Name)
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{tr.TopicSubjects("orders")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	batch, err := oc.Fetch(10, jetstream.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	for m := range batch.Messages() {
		fmt.Println(m.Subject(), m.Headers().Get(transport.HeaderID))
	}

	if err := natsjs.DeleteNamespace(ctx, tr.Conn(), "shop"); err != nil {
		fmt.Println(err)
	}
	// Output:
	// TROUPE_shop_EVENTS@orders
	// troupe.shop.e.orders.v1 orders-0
	// troupe.shop.e.orders.v1 orders-2
}
