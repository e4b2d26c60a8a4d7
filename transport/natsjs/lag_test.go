package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/transporttest"
)

// TestLagEmbedded checks Lag on the embedded server.
func TestLagEmbedded(t *testing.T) {
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	tr, err := srv.Connect(t.Context(), natsjs.Config{Namespace: "lag"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lagClose(tr) })
	testLag(t, tr)
}

// TestLagExternal checks Lag on the NATS server of TROUPE_TEST_NATS
// (default nats://127.0.0.1:4222), in a namespace of its own that it
// deletes afterwards. It skips when no server answers, except in CI.
func TestLagExternal(t *testing.T) {
	url := os.Getenv("TROUPE_TEST_NATS")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	raw, err := nats.Connect(url)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS server at %s: %v (CI needs it: start it with nats-server -js)", url, err)
		}
		t.Skipf("no NATS server at %s (%v); start one with nats-server -js or set TROUPE_TEST_NATS", url, err)
	}
	t.Cleanup(raw.Close)
	ns := fmt.Sprintf("lag%x", time.Now().UnixNano())
	tr, err := natsjs.Connect(t.Context(), url, natsjs.Config{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lagClose(tr)
		deleteNamespace(raw, ns)
	})
	testLag(t, tr)
}

func lagClose(tr transport.Transport) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = tr.Close(ctx)
}

// testLag builds a backlog of known size and follows it through handling,
// dead-lettering and a replay: Lag counts what waits, what is being
// handled, and what waits on the replay stream, and drops to 0 when all is
// settled.
func testLag(t *testing.T, tr *natsjs.Transport) {
	ctx := t.Context()
	sub := transport.Subscription{
		SubscriptionRef: transport.SubscriptionRef{Service: "billing", Name: "charge"},
		Topic:           "orders",
		Concurrency:     8,
	}
	// What every transport counts is in the conformance suite (Lag); this
	// test follows what this one counts beyond it.
	if err := tr.Declare(ctx, sub); err != nil {
		t.Fatal(err)
	}

	const backlog = 7
	msgs := make([]*transport.Message, backlog)
	for i := range msgs {
		msgs[i] = &transport.Message{
			ID: fmt.Sprintf("lag-%d", i), Type: "orders.v1", Source: "/lag-test",
			Time: time.Now(), Data: []byte(`{}`),
		}
	}
	if err := tr.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	transporttest.WaitLag(t, tr, sub.SubscriptionRef, backlog)

	// One event fails for good; the others are held by their handlers.
	release := make(chan struct{})
	var running atomic.Int32
	c, err := tr.Consume(ctx, sub, func(ctx context.Context, d *transport.Delivery) error {
		if d.ID == "lag-0" {
			return transport.Permanent(errors.New("bad order"))
		}
		running.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	lagWaitFor(t, "6 handlers running and 1 dead letter", func() bool {
		dls, err := tr.DeadLetters(ctx, sub.SubscriptionRef, 0)
		return err == nil && len(dls) == 1 && running.Load() == backlog-1
	})
	// The events being handled are delivered and not yet acknowledged:
	// they still count.
	transporttest.WaitLag(t, tr, sub.SubscriptionRef, backlog-1)
	close(release)
	transporttest.WaitLag(t, tr, sub.SubscriptionRef, 0)
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}

	// A replayed dead letter waits on the replay stream, for this
	// subscription only.
	dls, err := tr.DeadLetters(ctx, sub.SubscriptionRef, 0)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters: %v, %v", dls, err)
	}
	if err := tr.Replay(ctx, sub.SubscriptionRef, dls[0].ID); err != nil {
		t.Fatal(err)
	}
	transporttest.WaitLag(t, tr, sub.SubscriptionRef, 1)
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

// Lag tells how many events a subscription has not finished: here, three
// published before anyone consumes.
func ExampleTransport_Lag() {
	dir, _ := os.MkdirTemp("", "natsjs-lag")
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

	sub := transport.Subscription{SubscriptionRef: transport.SubscriptionRef{Service: "billing", Name: "charge"}, Topic: "orders"}
	if err := tr.Declare(ctx, sub); err != nil {
		fmt.Println(err)
		return
	}
	for i := range 3 {
		m := &transport.Message{ID: fmt.Sprint("order-", i), Type: "orders.v1", Source: "/shop", Time: time.Now(), Data: []byte(`{}`)}
		if err := tr.Publish(ctx, m); err != nil {
			fmt.Println(err)
			return
		}
	}
	// The server counts a moment after it confirmed the publish.
	n, err := tr.Lag(ctx, sub.SubscriptionRef)
	for deadline := time.Now().Add(10 * time.Second); err == nil && n < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		n, err = tr.Lag(ctx, sub.SubscriptionRef)
	}
	fmt.Println(n, err)
	// Output: 3 <nil>
}
