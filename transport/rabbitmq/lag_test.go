package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/rabbitmq"
	"github.com/troupe-go/troupe/transport/transporttest"
)

// TestLag builds a backlog of known size on the local RabbitMQ and checks
// that Lag counts it while it waits in the subscription's queue and while
// it waits in a retry queue, and that it drops to 0 once handled.
func TestLag(t *testing.T) {
	tr := open(t, rabbitmq.Config{RetryDelays: []time.Duration{50 * time.Millisecond, time.Minute}})
	ctx := t.Context()
	sub := testSub()
	sub.Retry.MaxAttempts = 100
	// What every transport counts is in the conformance suite (Lag); this
	// test follows what this one counts beyond it.
	if err := tr.Declare(ctx, sub); err != nil {
		t.Fatal(err)
	}

	const backlog = 7
	msgs := make([]*transport.Message, backlog)
	for i := range msgs {
		msgs[i] = testMessage("orders")
		msgs[i].ID = fmt.Sprintf("lag-%d", i)
	}
	if err := tr.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	transporttest.WaitLag(t, tr, sub.SubscriptionRef, backlog)

	// Every attempt asks for a retry in a minute: the backlog moves to the
	// one-minute retry queue and still counts. (A retry the broker refuses
	// to store goes back to the subscription's queue and is tried again, so
	// every event ends up in the retry queue all the same.)
	var seen sync.Map
	var attempted atomic.Int32
	c, err := tr.Consume(ctx, sub, func(ctx context.Context, d *transport.Delivery) error {
		if _, dup := seen.LoadOrStore(d.ID, true); !dup {
			attempted.Add(1)
		}
		return transport.RetryAfter(time.Minute, errors.New("not yet"))
	})
	if err != nil {
		t.Fatal(err)
	}
	lagWaitFor(t, "an attempt at every event", func() bool { return attempted.Load() == backlog })
	transporttest.WaitLag(t, tr, sub.SubscriptionRef, backlog)
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}

	// A second subscription of the topic handles its copies at once.
	quick := testSub()
	quick.Name = "quick"
	if err := tr.Declare(ctx, quick); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, testMessage("orders"), testMessage("orders")); err != nil {
		t.Fatal(err)
	}
	transporttest.WaitLag(t, tr, quick.SubscriptionRef, 2)
	var handled atomic.Int32
	c2, err := tr.Consume(ctx, quick, func(context.Context, *transport.Delivery) error {
		handled.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Stop(context.Background()) })
	lagWaitFor(t, "both events handled", func() bool { return handled.Load() == 2 })
	transporttest.WaitLag(t, tr, quick.SubscriptionRef, 0)
	// The first subscription got the two new events too, on top of its
	// retries.
	transporttest.WaitLag(t, tr, sub.SubscriptionRef, backlog+2)
}

// lagWaitFor polls cond until it holds, failing the test after 10s.
func lagWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
