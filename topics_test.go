package troupe_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// An app that starts on NATS has a stream for every topic it declares,
// also the ones nothing in it publishes or subscribes to yet, so a
// publisher outside the app finds each topic's stream ready.
func TestStartDeclaresEveryTopicsStream(t *testing.T) {
	a := troupe.New(troupe.Config{Name: "declared", DataDir: t.TempDir(), HTTPAddr: "off", Logger: quietLogger()})
	imported := troupe.NewTopic[orderPlaced]("order_imported", 1)
	a.Topics(imported)                                       // published from outside
	a.Service("orders").Publishes(testOrderPlaced)           // nobody subscribes
	troupe.Subscribe(a.Service("audit"), imported, "record", // subscribed
		func(context.Context, troupe.Event[orderPlaced]) error { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Stop(context.Background()) }()
	js, err := jetstream.New(a.Transport().(*natsjs.Transport).Conn())
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"order_imported", "order_placed"} {
		if _, err := js.Stream(ctx, "TROUPE_declared_EVENTS@"+topic); err != nil {
			t.Errorf("stream of topic %s after Start: %v", topic, err)
		}
	}
}
