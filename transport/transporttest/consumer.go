package transporttest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// testStopDrains: Stop lets running handlers finish, starts no new ones, and
// leaves every unhandled message to the next consumer.
func testStopDrains(t *testing.T, h Harness) {
	const (
		n    = 200
		work = 50 * time.Millisecond
	)
	ns := newNamespace()
	tr1 := h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	sub.Concurrency = 4
	sub.Lease = 2 * lease
	declare(t, tr1, sub)
	msgs := newMessages(topic, n)
	for i := 0; i < n; i += 50 {
		publish(t, tr1, msgs[i:i+50]...)
	}

	handled := newCollector()
	var (
		running    atomic.Int32 // handlers of the first consumer now running
		stopped    atomic.Bool  // set once Stop returned
		lateStarts atomic.Int32 // handlers started after Stop returned
		cancelled  atomic.Int32 // handlers whose context ended early
	)
	first := consume(t, tr1, sub, func(ctx context.Context, d *transport.Delivery) error {
		if stopped.Load() {
			lateStarts.Add(1)
		}
		running.Add(1)
		defer running.Add(-1)
		select {
		case <-time.After(work):
		case <-ctx.Done():
			cancelled.Add(1)
			return ctx.Err()
		}
		handled.add(d)
		return nil
	})

	waitFor(t, waitTimeout, func() bool { return handled.unique() >= 20 }, func() string {
		return fmt.Sprintf("first consumer handled %d events, want 20 before stopping it", handled.unique())
	})
	stopCtx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := first.Stop(stopCtx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	stopped.Store(true)
	if r := running.Load(); r != 0 {
		t.Errorf("Stop returned with %d handlers still running", r)
	}
	select {
	case <-first.Done():
	default:
		t.Error("Done not closed after Stop returned")
	}
	if c := cancelled.Load(); c != 0 {
		t.Errorf("%d handlers had their context cancelled by a Stop with time to spare", c)
	}
	byFirst := handled.unique()

	tr2 := h.Open(t, ns)
	consume(t, tr2, sub, handled.handler())
	waitFor(t, waitTimeout, func() bool { return handled.unique() >= n }, func() string {
		return fmt.Sprintf("%d of %d events handled after the first consumer stopped; missing, first few: %v",
			handled.unique(), n, handled.missing(ids(msgs)))
	})
	if l := lateStarts.Load(); l != 0 {
		t.Errorf("the stopped consumer started %d handlers after Stop returned", l)
	}
	t.Logf("first consumer handled %d events before Stop, second the rest; %d duplicates",
		byFirst, duplicates(handled.counts()))
}

// testStopReleasesPrefetched: a consumer that stops hands back at once the
// events it fetched but did not start, rather than sitting on them until
// their lease runs out (and the broker redelivers them all together): with
// a lease longer than the suite waits, another consumer gets every one of
// them, each handled exactly once.
func testStopReleasesPrefetched(t *testing.T, h Harness) {
	const n = 20
	ns := newNamespace()
	tr1 := h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	sub.Concurrency, sub.Prefetch = 1, 2*n
	sub.Lease = 2 * waitTimeout // a release that waits for the lease fails the test
	declare(t, tr1, sub)
	msgs := newMessages(topic, n)
	publish(t, tr1, msgs...)

	handled := newCollector()
	started := make(chan struct{}, n)
	release := make(chan struct{})
	first := consume(t, tr1, sub, func(ctx context.Context, d *transport.Delivery) error {
		handled.add(d)
		started <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	select {
	case <-started: // the others are fetched by now, or waiting on the broker
	case <-time.After(waitTimeout):
		t.Fatal("the first consumer handled nothing")
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		stopped <- first.Stop(ctx)
	}()
	close(release) // the running handler finishes; Stop settles it
	if err := <-stopped; err != nil {
		t.Errorf("Stop: %v", err)
	}

	tr2 := h.Open(t, ns)
	consume(t, tr2, sub, handled.handler())
	waitFor(t, waitTimeout, func() bool { return handled.unique() >= n }, func() string {
		return fmt.Sprintf("%d of %d events handled after the first consumer stopped (its lease is %s): what it fetched was not released; missing: %v",
			handled.unique(), n, sub.Lease, handled.missing(ids(msgs)))
	})
	if d := duplicates(handled.counts()); d != 0 {
		t.Errorf("%d events handled twice: the stopped consumer released events it had started", d)
	}
}
