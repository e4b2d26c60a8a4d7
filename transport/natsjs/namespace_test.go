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

// TopicStream and TopicSubjects find a topic's events on the server: a
// consumer they describe reads that topic's events and no other's.
func TestTopicStreamHoldsTheTopicsEvents(t *testing.T) {
	f := newStreamsFixture(t)
	tr := f.transport(t, "history")
	if err := tr.Publish(f.ctx, streamsMsg("orders", 1), streamsMsg("payments", 1), streamsMsg("orders", 2)); err != nil {
		t.Fatal(err)
	}
	s, err := tr.TopicStream(f.ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	oc, err := s.OrderedConsumer(f.ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{tr.TopicSubjects("orders")}})
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
	if _, err := tr.TopicStream(f.ctx, "no.dots"); err == nil {
		t.Error("TopicStream of an invalid topic name: no error")
	}
	if err := tr.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.TopicStream(f.ctx, "orders"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("TopicStream after Close: %v, want ErrClosed", err)
	}
}

// DeleteNamespace removes every stream of one namespace, its lock bucket
// included, and leaves the others.
func TestDeleteNamespace(t *testing.T) {
	f := newStreamsFixture(t)
	streams := func() []string {
		var got []string
		l := f.js.StreamNames(f.ctx)
		for s := range l.Name() {
			got = append(got, s)
		}
		if err := l.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, ns := range []string{"gone", "kept"} {
		tr := f.transport(t, ns)
		if err := tr.Publish(f.ctx, streamsMsg("a", 1)); err != nil {
			t.Fatal(err)
		}
		if err := tr.DeclareJournal(f.ctx, transport.JournalConfig{MaxAge: time.Hour}); err != nil {
			t.Fatal(err)
		}
		sub := streamsSub("s", "n", "a")
		sub.Ordered = true
		c, err := tr.Consume(f.ctx, sub, func(context.Context, *transport.Delivery) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(f.ctx); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := streams(); len(got) != 10 {
		t.Fatalf("before: streams %v, want 5 of each namespace (events of topic a, replay, dead letters, journal, locks)", got)
	}
	if err := natsjs.DeleteNamespace(f.ctx, f.nc, "gone"); err != nil {
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
	if err := natsjs.DeleteNamespace(f.ctx, f.nc, "gone"); err != nil {
		t.Errorf("deleting an empty namespace: %v", err)
	}
	if err := natsjs.DeleteNamespace(f.ctx, f.nc, "no.dots"); err == nil {
		t.Error("DeleteNamespace of an invalid name: no error")
	}
}

// A stream an operator made for the events of every app is used by each
// namespace, and DeleteNamespace of one of them leaves it.
func TestDeleteNamespaceLeavesASharedStream(t *testing.T) {
	f := newStreamsFixture(t)
	if _, err := f.js.CreateStream(f.ctx, jetstream.StreamConfig{
		Name: "ARCHIVE", Subjects: []string{"troupe.*.e.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	for i, ns := range []string{"gone", "kept"} {
		if err := f.transport(t, ns).Publish(f.ctx, streamsMsg("a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := natsjs.DeleteNamespace(f.ctx, f.nc, "gone"); err != nil {
		t.Fatal(err)
	}
	s, err := f.js.Stream(f.ctx, "ARCHIVE")
	if err != nil {
		t.Fatalf("the shared stream after DeleteNamespace(gone): %v", err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("the shared stream holds %d events, want both namespaces' 2", n)
	}
	if got := f.streams(t, "gone"); len(got) != 1 {
		t.Errorf("streams with namespace gone's subjects: %v, want only ARCHIVE", got)
	}
}
