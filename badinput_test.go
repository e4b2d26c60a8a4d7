package troupe_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// Events troupe cannot read go to the subscription's dead letters with a
// reason, and the events after them are handled as usual.
func TestUnreadableEventsAreDeadLettered(t *testing.T) {
	a := newApp(t)
	a.Service("orders").Publishes(testOrderPlaced)
	handled := make(chan troupe.Event[orderPlaced], 10)
	troupe.Subscribe(a.Service("payment"), testOrderPlaced, "charge",
		func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
			handled <- ev
			return nil
		})
	startApp(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	raw := func(id, typ, contentType, data string) *transport.Message {
		return &transport.Message{ID: id, Type: typ, Source: "/elsewhere", Time: time.Now(),
			DataContentType: contentType, Data: []byte(data)}
	}
	bad := map[string]*transport.Message{
		"not-json":     raw("not-json", "order_placed.v1", "", `{"order_id": 7,`),
		"wrong-shape":  raw("wrong-shape", "order_placed.v1", "", `["a list"]`),
		"wrong-field":  raw("wrong-field", "order_placed.v1", "", `{"total": "forty-two"}`),
		"newer":        raw("newer", "order_placed.v2", "", `{"order_id":"x"}`),
		"text":         raw("text", "order_placed.v1", "text/plain", `hello`),
		"invalid-utf8": raw("invalid-utf8", "order_placed.v1", "", "{\"order_id\":\"\xff\"}"),
	}
	for _, m := range bad {
		if err := a.Transport().Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Transport().Publish(ctx, raw("good", "order_placed.v1", "", `{"order_id":"ok","total":3}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-handled:
		if ev.ID != "good" || ev.Data.OrderID != "ok" {
			t.Fatalf("handled %s %+v; only the good event should reach the handler", ev.ID, ev.Data)
		}
	case <-ctx.Done():
		t.Fatal("the good event after the bad ones was never handled")
	}
	var dead []troupe.DeadLetter
	for len(dead) < len(bad) {
		var err error
		if dead, err = a.DeadLetters(ctx, "payment.charge", 0); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d bad events dead-lettered", len(dead), len(bad))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, d := range dead {
		if _, ok := bad[d.Message.ID]; !ok {
			t.Errorf("unexpected dead letter %q", d.Message.ID)
		}
		if d.Attempts != 1 {
			t.Errorf("%s: %d attempts; unreadable events must not be retried", d.Message.ID, d.Attempts)
		}
		switch want := transport.ReasonMalformed; d.Message.ID {
		case "newer":
			if d.Reason != transport.ReasonPermanent || !strings.Contains(d.Error, "unknown event version") {
				t.Errorf("newer version: reason %s, error %q", d.Reason, d.Error)
			}
		default:
			if d.Reason != want {
				t.Errorf("%s: reason %s (%s), want %s", d.Message.ID, d.Reason, d.Error, want)
			}
		}
	}
	if len(handled) != 0 {
		t.Errorf("%d more events reached the handler", len(handled))
	}
}
