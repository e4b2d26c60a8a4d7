package troupe_test

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

// Extension attributes a producer sets (here through PublishMessages, as a
// foreign client would with a ce-tenant header) reach the handler on the
// envelope, beside the ordering key.
func TestExtensionsReachTheHandler(t *testing.T) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: uniqueName("ext")}))
	got := make(chan troupe.Envelope, 1)
	troupe.Subscribe(app.Service("obs").Publishes(observedTopic), observedTopic, "tenants",
		func(_ context.Context, ev troupe.Event[observed]) error { got <- ev.Envelope; return nil })
	troupetest.Start(t, app)
	msgs, err := troupe.Encode(app.Context(context.Background()), observedTopic, observed{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	msgs[0].Extensions = map[string]string{"tenant": "acme", "partitionkey": "k1"}
	if err := app.PublishMessages(app.Context(context.Background()), msgs...); err != nil {
		t.Fatal(err)
	}
	var ev troupe.Envelope
	select {
	case ev = <-got:
	case <-time.After(troupetest.DefaultTimeout):
		t.Fatal("the event was not handled")
	}
	if ev.Extensions["tenant"] != "acme" || ev.OrderingKey != "k1" {
		t.Errorf("envelope %+v: want extension tenant=acme and ordering key k1", ev)
	}
}
