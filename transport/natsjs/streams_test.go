package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// streamsFixture is an embedded server with a connection for looking at
// what transports leave on it.
type streamsFixture struct {
	srv *natsjs.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	ctx context.Context
}

func newStreamsFixture(t *testing.T) *streamsFixture {
	t.Helper()
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
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return &streamsFixture{srv: srv, nc: nc, js: js, ctx: ctx}
}

func (f *streamsFixture) transport(t *testing.T, ns string) *natsjs.Transport {
	t.Helper()
	tr, err := f.srv.Connect(f.ctx, natsjs.Config{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	return tr
}

// streams lists the server's streams whose subjects are the namespace's,
// with how many messages each holds.
func (f *streamsFixture) streams(t *testing.T, ns string) map[string]uint64 {
	t.Helper()
	got := map[string]uint64{}
	l := f.js.ListStreams(f.ctx, jetstream.WithStreamListSubject("troupe."+ns+".>"))
	for info := range l.Info() {
		got[info.Config.Name] = info.State.Msgs
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func streamsMsg(topic string, i int) *transport.Message {
	return &transport.Message{ID: fmt.Sprintf("%s-%d", topic, i), Source: "/test",
		Type: transport.WireType(topic, 1), Data: []byte(`{}`)}
}

func streamsSub(service, name, topic string) transport.Subscription {
	return transport.Subscription{SubscriptionRef: transport.SubscriptionRef{Service: service, Name: name}, Topic: topic}
}

// Each topic gets a stream of its own, made by the first publish or
// declaration, holding only that topic's events, and a subscription's
// consumer is on its topic's stream.
func TestEachTopicHasItsOwnStream(t *testing.T) {
	f := newStreamsFixture(t)
	tr := f.transport(t, "pertopic")
	if got := f.streams(t, "pertopic"); len(got) != 2 {
		t.Fatalf("before any topic is used: streams %v, want only the replay and dead-letter streams", got)
	}
	// Concurrent first publishes of one topic find or make its stream once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			errs <- tr.Publish(f.ctx, streamsMsg("orders", g), streamsMsg("orders", 100+g))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Publish(f.ctx, streamsMsg("payments", 1), streamsMsg("orders", 1000)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Declare(f.ctx, streamsSub("mail", "welcome", "signups")); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"TROUPE_pertopic_EVENTS@orders":   17,
		"TROUPE_pertopic_EVENTS@payments": 1,
		"TROUPE_pertopic_EVENTS@signups":  0,
		"TROUPE_pertopic_REPLAY":          0,
		"TROUPE_pertopic_DLQ":             0,
	}
	if got := f.streams(t, "pertopic"); !maps.Equal(got, want) {
		t.Errorf("streams and their messages: %v, want %v", got, want)
	}
	if _, err := f.js.Consumer(f.ctx, "TROUPE_pertopic_EVENTS@signups", "mail@welcome"); err != nil {
		t.Errorf("the subscription's consumer on its topic's stream: %v", err)
	}
	s, err := tr.TopicStream(f.ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if name := s.CachedInfo().Config.Name; name != "TROUPE_pertopic_EVENTS@orders" {
		t.Errorf("TopicStream(orders) = %s", name)
	}
	if got := tr.TopicSubjects("orders"); got != "troupe.pertopic.e.orders.*" {
		t.Errorf("TopicSubjects(orders) = %s", got)
	}
	if _, err := tr.TopicStream(f.ctx, "no.dots"); err == nil {
		t.Error("TopicStream of an invalid topic name: no error")
	}
}

// A namespace made before streams were per topic has one stream for all
// events: the transport keeps using it, for publishing, consuming, lag and
// TopicStream, and makes no stream per topic beside it.
func TestANamespaceWithOneEventsStreamKeepsIt(t *testing.T) {
	f := newStreamsFixture(t)
	const ns = "legacy"
	if _, err := f.js.CreateStream(f.ctx, jetstream.StreamConfig{
		Name: "TROUPE_legacy_EVENTS", Subjects: []string{"troupe.legacy.e.>"}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	tr := f.transport(t, ns)
	got := make(chan string, 16)
	sub := streamsSub("billing", "charge", "orders")
	c, err := tr.Consume(f.ctx, sub, func(_ context.Context, d *transport.Delivery) error {
		got <- d.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	if err := tr.Publish(f.ctx, streamsMsg("orders", 1), streamsMsg("payments", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "orders-1" {
			t.Errorf("handled %s, want orders-1", id)
		}
	case <-f.ctx.Done():
		t.Fatal("the event published to the namespace's one stream was not handled")
	}
	want := map[string]uint64{"TROUPE_legacy_EVENTS": 2, "TROUPE_legacy_REPLAY": 0, "TROUPE_legacy_DLQ": 0}
	if got := f.streams(t, ns); !maps.Equal(got, want) {
		t.Errorf("streams and their messages: %v, want %v", got, want)
	}
	if s, err := tr.TopicStream(f.ctx, "payments"); err != nil || s.CachedInfo().Config.Name != "TROUPE_legacy_EVENTS" {
		t.Errorf("TopicStream(payments) on the old layout: %v, %v", s, err)
	}
	if _, err := tr.Lag(f.ctx, sub.SubscriptionRef); err != nil {
		t.Errorf("Lag on the old layout: %v", err)
	}
}

// A subscription's topic cannot change under the same name: its consumer
// is on the old topic's stream, so a declaration on another topic, in a
// later process, fails and says why, as with one stream for all topics.
func TestASubscriptionCannotMoveToAnotherTopic(t *testing.T) {
	f := newStreamsFixture(t)
	first := f.transport(t, "moving")
	if err := first.Declare(f.ctx, streamsSub("mail", "welcome", "signups")); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	later := f.transport(t, "moving")
	err := later.Declare(f.ctx, streamsSub("mail", "welcome", "logins"))
	if err == nil || !strings.Contains(err.Error(), "cannot change its topic") || !strings.Contains(err.Error(), "TROUPE_moving_EVENTS@signups") {
		t.Fatalf("declaring mail.welcome on another topic: %v, want an error naming the stream it is on", err)
	}
	if _, err := f.js.Consumer(f.ctx, "TROUPE_moving_EVENTS@logins", "mail@welcome"); !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("a consumer was made on the new topic's stream anyway: %v", err)
	}
	if err := later.Declare(f.ctx, streamsSub("mail", "welcome", "signups")); err != nil {
		t.Errorf("declaring it again on its own topic: %v", err)
	}
}

// Lag finds a subscription that another process declared.
func TestLagOfASubscriptionDeclaredElsewhere(t *testing.T) {
	f := newStreamsFixture(t)
	owner := f.transport(t, "lagged")
	sub := streamsSub("billing", "charge", "orders")
	if err := owner.Declare(f.ctx, sub); err != nil {
		t.Fatal(err)
	}
	if err := owner.Publish(f.ctx, streamsMsg("orders", 1), streamsMsg("orders", 2), streamsMsg("other", 1)); err != nil {
		t.Fatal(err)
	}
	watcher := f.transport(t, "lagged")
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := watcher.Lag(f.ctx, sub.SubscriptionRef)
		if err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag %d, want 2", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := watcher.Lag(f.ctx, transport.SubscriptionRef{Service: "billing", Name: "nobody"}); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("Lag of an undeclared subscription: %v, want ErrNotFound", err)
	}
}

// A topic's stream deleted by hand takes its subscriptions' consumers
// with it. Publishing does not quietly make the stream again, which would
// store events no subscription reads: every publish fails and says what
// to do, and a restart (a new transport) declares stream and consumer.
func TestADeletedTopicStreamFailsPublishesUntilARestart(t *testing.T) {
	f := newStreamsFixture(t)
	tr := f.transport(t, "deleted")
	sub := streamsSub("billing", "charge", "orders")
	if err := tr.Declare(f.ctx, sub); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(f.ctx, streamsMsg("orders", 1)); err != nil {
		t.Fatal(err)
	}
	if err := f.js.DeleteStream(f.ctx, "TROUPE_deleted_EVENTS@orders"); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 3; i++ {
		err := tr.Publish(f.ctx, streamsMsg("orders", i))
		if err == nil || !strings.Contains(err.Error(), "stream deleted") || !strings.Contains(err.Error(), "restart") {
			t.Fatalf("publish %d after the stream was deleted: %v, want an error that says the stream is gone", i, err)
		}
	}
	if got, ok := f.streams(t, "deleted")["TROUPE_deleted_EVENTS@orders"]; ok {
		t.Fatalf("the stream was made again (%d events) with no consumer on it", got)
	}
	restarted := f.transport(t, "deleted")
	if err := restarted.Declare(f.ctx, sub); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Publish(f.ctx, streamsMsg("orders", 4)); err != nil {
		t.Fatalf("publishing after a restart: %v", err)
	}
	n, err := restarted.Lag(f.ctx, sub.SubscriptionRef)
	for deadline := time.Now().Add(10 * time.Second); err == nil && n != 1 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		n, err = restarted.Lag(f.ctx, sub.SubscriptionRef)
	}
	if err != nil || n != 1 {
		t.Errorf("after the restart the subscription has %d events waiting (%v), want the one published since", n, err)
	}
}

// A stream with troupe's name for a topic that stores other subjects is
// not taken over.
func TestAStreamNameTakenByOtherSubjectsIsAnError(t *testing.T) {
	f := newStreamsFixture(t)
	if _, err := f.js.CreateStream(f.ctx, jetstream.StreamConfig{
		Name: "TROUPE_taken_EVENTS@orders", Subjects: []string{"elsewhere.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	tr := f.transport(t, "taken")
	err := tr.Publish(f.ctx, streamsMsg("orders", 1))
	if err == nil || !strings.Contains(err.Error(), "belongs to something else") {
		t.Fatalf("publishing to a topic whose stream name is taken: %v", err)
	}
	s, err := f.js.Stream(f.ctx, "TROUPE_taken_EVENTS@orders")
	if err != nil {
		t.Fatal(err)
	}
	if subj := s.CachedInfo().Config.Subjects; !slices.Equal(subj, []string{"elsewhere.>"}) {
		t.Errorf("the other stream's subjects became %v", subj)
	}
}

// A subscription another process declares after this transport looked for
// it is found once the last look is old enough.
func TestLagFindsASubscriptionDeclaredAfterItLooked(t *testing.T) {
	defer natsjs.SetRescanAfter(50 * time.Millisecond)()
	f := newStreamsFixture(t)
	watcher := f.transport(t, "late")
	sub := streamsSub("billing", "charge", "orders")
	if _, err := watcher.Lag(f.ctx, sub.SubscriptionRef); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("Lag before anyone declared it: %v, want ErrNotFound", err)
	}
	if err := f.transport(t, "late").Declare(f.ctx, sub); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := watcher.Lag(f.ctx, sub.SubscriptionRef)
		if err == nil {
			break
		}
		if !errors.Is(err, transport.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("Lag of a subscription declared since the last look: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
