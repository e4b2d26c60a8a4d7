package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
)

func namespaceMsg(topic string, i int) *transport.Message {
	return &transport.Message{ID: fmt.Sprintf("%s-%d", topic, i), Source: "/test",
		Type: transport.WireType(topic, 1), Data: []byte(`{}`)}
}

// TopicStream and TopicSubjects find a topic's events on the server: a
// consumer they describe reads that topic's events and no other's.
func TestTopicStreamHoldsTheTopicsEvents(t *testing.T) {
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tr, err := srv.Connect(ctx, natsjs.Config{Namespace: "history"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	if err := tr.Publish(ctx, namespaceMsg("orders", 1), namespaceMsg("payments", 1), namespaceMsg("orders", 2)); err != nil {
		t.Fatal(err)
	}
	s, err := tr.TopicStream(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{tr.TopicSubjects("orders")}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := oc.Fetch(10, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for m := range batch.Messages() {
		ids = append(ids, m.Headers().Get(transport.HeaderID))
	}
	if fmt.Sprint(ids) != "[orders-1 orders-2]" {
		t.Errorf("read %v from the topic's stream and subjects, want [orders-1 orders-2]", ids)
	}
	if _, err := tr.TopicStream(ctx, "no.dots"); err == nil {
		t.Error("TopicStream of an invalid topic name: no error")
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.TopicStream(ctx, "orders"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("TopicStream after Close: %v, want ErrClosed", err)
	}
}

// DeleteNamespace removes every stream of one namespace, its lock bucket
// included, and leaves the others.
func TestDeleteNamespace(t *testing.T) {
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Conn("look")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	streams := func() []string {
		var got []string
		l := js.StreamNames(ctx)
		for s := range l.Name() {
			got = append(got, s)
		}
		if err := l.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, ns := range []string{"gone", "kept"} {
		tr, err := srv.Connect(ctx, natsjs.Config{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Publish(ctx, namespaceMsg("a", 1)); err != nil {
			t.Fatal(err)
		}
		if err := tr.DeclareJournal(ctx, transport.JournalConfig{MaxAge: time.Hour}); err != nil {
			t.Fatal(err)
		}
		sub := transport.Subscription{SubscriptionRef: transport.SubscriptionRef{Service: "s", Name: "n"}, Topic: "a", Ordered: true}
		c, err := tr.Consume(ctx, sub, func(context.Context, *transport.Delivery) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := streams(); len(got) != 10 {
		t.Fatalf("before: streams %v, want 5 of each namespace (events, replay, dead letters, journal, locks)", got)
	}
	if err := natsjs.DeleteNamespace(ctx, nc, "gone"); err != nil {
		t.Fatal(err)
	}
	got := streams()
	for _, s := range got {
		if !strings.HasPrefix(s, "TROUPE_kept_") && s != "KV_TROUPE_kept_LOCKS" {
			t.Errorf("left after DeleteNamespace(gone): %s", s)
		}
	}
	if len(got) != 5 {
		t.Errorf("after: streams %v, want the 5 of namespace kept", got)
	}
	if err := natsjs.DeleteNamespace(ctx, nc, "gone"); err != nil {
		t.Errorf("deleting an empty namespace: %v", err)
	}
	if err := natsjs.DeleteNamespace(ctx, nc, "no.dots"); err == nil {
		t.Error("DeleteNamespace of an invalid name: no error")
	}
}
