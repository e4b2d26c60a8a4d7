package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// open connects a transport in a fresh namespace, closed and deleted when
// the test ends.
func open(t *testing.T, cfg rabbitmq.Config) *rabbitmq.Transport {
	t.Helper()
	raw := dialRaw(t)
	cfg.Namespace = fmt.Sprintf("rt%x", time.Now().UnixNano())
	tr, err := rabbitmq.Connect(t.Context(), brokerURL(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tr.Close(ctx)
		deleteNamespace(t, raw, []*rabbitmq.Transport{tr})
	})
	return tr
}

func testSub() transport.Subscription {
	return transport.Subscription{
		SubscriptionRef: transport.SubscriptionRef{Service: "billing", Name: "charge"},
		Topic:           "orders",
		Retry:           transport.RetryPolicy{MaxAttempts: 3, MinBackoff: 20 * time.Millisecond, Jitter: transport.NoJitter},
	}
}

func testMessage(topic string) *transport.Message {
	return &transport.Message{
		ID: fmt.Sprintf("m%x", time.Now().UnixNano()), Type: transport.WireType(topic, 1),
		Source: "rabbitmq-test", Time: time.Now(), Data: []byte(`{}`),
	}
}

// TestRetryBeyondLargestBucket: a delay longer than the largest retry
// bucket passes through that bucket several times and is not handled early.
func TestRetryBeyondLargestBucket(t *testing.T) {
	const delay = 400 * time.Millisecond
	tr := open(t, rabbitmq.Config{RetryDelays: []time.Duration{50 * time.Millisecond}})
	sub := testSub()
	if err := tr.Declare(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(t.Context(), testMessage("orders")); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		times []time.Time
		seen  []int
		done  = make(chan struct{})
	)
	_, err := tr.Consume(t.Context(), sub, func(_ context.Context, d *transport.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		seen = append(seen, d.Attempt)
		if d.Attempt == 1 {
			return transport.RetryAfter(delay, errors.New("not yet"))
		}
		close(done)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("no second attempt; attempts seen %v", seen)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[1] != 2 {
		t.Fatalf("attempts seen %v, want [1 2]: parking in the bucket must not count", seen)
	}
	if gap := times[1].Sub(times[0]); gap < delay {
		t.Errorf("second attempt %s after the first, want at least %s", gap, delay)
	}
}

// TestUnroutable: an event no subscription receives is an error with
// UnroutableError, and not with the default.
func TestUnroutable(t *testing.T) {
	strict := open(t, rabbitmq.Config{Unroutable: rabbitmq.UnroutableError})
	err := strict.Publish(t.Context(), testMessage("nobody"), testMessage("nobody"))
	if !errors.Is(err, rabbitmq.ErrUnroutable) {
		t.Errorf("Publish to a topic without subscriptions with UnroutableError: %v, want ErrUnroutable", err)
	}
	sub := testSub()
	if err := strict.Declare(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	if err := strict.Publish(t.Context(), testMessage(sub.Topic)); err != nil {
		t.Errorf("Publish to a subscribed topic with UnroutableError: %v", err)
	}
	lax := open(t, rabbitmq.Config{})
	if err := lax.Publish(t.Context(), testMessage("nobody")); err != nil {
		t.Errorf("Publish to a topic without subscriptions by default: %v, want nil", err)
	}
}

// TestDeadLetterLimit: listing with a limit returns the oldest letters and
// leaves all of them in place, in order.
func TestDeadLetterLimit(t *testing.T) {
	tr := open(t, rabbitmq.Config{})
	sub := testSub()
	if err := tr.Declare(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		m := testMessage(sub.Topic)
		if err := tr.Publish(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	_, err := tr.Consume(t.Context(), sub, func(context.Context, *transport.Delivery) error {
		return transport.Permanent(errors.New("no"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Handlers run concurrently, so the order of the dead letters is the
	// order they were stored in, which the first listing shows.
	var order []string
	deadline := time.Now().Add(10 * time.Second)
	for len(order) < 5 {
		dls, err := tr.DeadLetters(t.Context(), sub.SubscriptionRef, 0)
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters, want 5", len(dls))
		}
		order = order[:0]
		for _, dl := range dls {
			order = append(order, dl.Message.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 3 {
		two, err := tr.DeadLetters(t.Context(), sub.SubscriptionRef, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(two) != 2 || two[0].Message.ID != order[0] || two[1].Message.ID != order[1] {
			t.Fatalf("DeadLetters with limit 2: %d letters, want the two oldest", len(two))
		}
	}
	all, err := tr.DeadLetters(t.Context(), sub.SubscriptionRef, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, dl := range all {
		if dl.Message.ID != order[i] {
			t.Errorf("dead letter %d is %s, want %s: listing changed the order", i, dl.Message.ID, order[i])
		}
	}
	if err := tr.Discard(t.Context(), sub.SubscriptionRef, all[2].ID); err != nil {
		t.Fatal(err)
	}
	rest, err := tr.DeadLetters(t.Context(), sub.SubscriptionRef, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 4 || rest[2].Message.ID != order[3] {
		t.Errorf("after discarding the third: %d letters, want 4 in order", len(rest))
	}
}

// TestConnectErrorHidesPassword: a failed connect names the broker but not
// the password.
func TestConnectErrorHidesPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := rabbitmq.Connect(ctx, "amqp://troupe:s3cr3t-pw@127.0.0.1:1/", rabbitmq.Config{})
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error does not say which broker: %v", err)
	}
}
