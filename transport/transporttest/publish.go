package transporttest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// testPublishTooLarge: Publish refuses a message that is too large, lacks a
// required attribute or has an extension named like a core attribute, and
// stores nothing for it.
func testPublishTooLarge(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)

	big := newMessage(topic, 0)
	big.Data = jsonString(2<<20 + 1)
	if err := tr.Publish(callCtx(t), big); !errors.Is(err, transport.ErrTooLarge) {
		t.Errorf("Publish of %d bytes of data: %v, want an error wrapping transport.ErrTooLarge", len(big.Data), err)
	}
	noID := newMessage(topic, 1)
	noID.ID = ""
	if err := tr.Publish(callCtx(t), noID); !errors.Is(err, transport.ErrMalformed) {
		t.Errorf("Publish of a message without ID: %v, want an error wrapping transport.ErrMalformed", err)
	}
	badType := newMessage(topic, 2)
	badType.Type = topic // no ".v<version>"
	if err := tr.Publish(callCtx(t), badType); !errors.Is(err, transport.ErrMalformed) {
		t.Errorf("Publish of a message with Type %q: %v, want an error wrapping transport.ErrMalformed", badType.Type, err)
	}
	// An extension named like a core attribute would overwrite the real
	// one's header (ce-id, ce-type, ...).
	for _, name := range []string{"id", "type", "source", "specversion", "time", "datacontenttype"} {
		clash := newMessage(topic, 4)
		clash.Extensions = map[string]string{name: "overwritten"}
		if err := tr.Publish(callCtx(t), clash); !errors.Is(err, transport.ErrMalformed) || !strings.Contains(err.Error(), name) {
			t.Errorf("Publish of a message with extension %q: %v, want an error wrapping transport.ErrMalformed that names it", name, err)
		}
	}
	ok := newMessage(topic, 3)
	publish(t, tr, ok)

	got := newCollector()
	consume(t, tr, sub, got.handler())
	got.waitUnique(t, 1, "valid event published after refused ones")
	// Refused messages, had they been stored, were ahead of the valid one;
	// give them a lease to arrive or to be dead-lettered.
	quiet(t, lease)
	if n := got.total(); n != 1 || got.times(ok.ID) != 1 {
		t.Errorf("%d deliveries %v, want only the valid event %s: a refused message was published", n, got.counts(), ok.ID)
	}
	if dls := deadLetters(t, tr, sub.SubscriptionRef); len(dls) != 0 {
		t.Errorf("%d dead letters, want none: a refused message was published and then rejected: %+v", len(dls), dls)
	}
}

// testPublishConfirms: once Publish returned, the events survive the
// publisher's Close at once.
func testPublishConfirms(t *testing.T, h Harness) {
	const n = 100
	ns := newNamespace()
	pub := h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	declare(t, pub, sub)

	msgs := newMessages(topic, n)
	for i := 0; i < n; i += 10 {
		if i%20 == 0 {
			for _, m := range msgs[i : i+10] {
				publish(t, pub, m)
			}
		} else {
			publish(t, pub, msgs[i:i+10]...)
		}
	}
	if err := pub.Close(callCtx(t)); err != nil {
		t.Fatalf("Close right after Publish: %v", err)
	}

	con := h.Open(t, ns)
	got := newCollector()
	consume(t, con, sub, got.handler())
	waitFor(t, waitTimeout, func() bool { return got.unique() >= n }, func() string {
		return fmt.Sprintf("%d of %d confirmed events arrived after the publisher closed; missing, first few: %v",
			got.unique(), n, got.missing(ids(msgs)))
	})
}

// testConcurrentPublish10k: many goroutines publishing at once, singly and in
// batches, lose nothing, and a busy consumer handles it all.
func testConcurrentPublish10k(t *testing.T, h Harness) {
	const (
		total      = 10_000
		publishers = 50
		each       = total / publishers
		batch      = 50
		timeout    = time.Minute
	)
	ns := newNamespace()
	pub, con := h.Open(t, ns), h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	sub.Concurrency = 16
	sub.Lease = 5 * time.Second // renewals may lag on a loaded machine
	declare(t, pub, sub)

	got := newCollector()
	consume(t, con, sub, got.handler())

	msgs := newMessages(topic, total)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for g := range publishers {
		part := msgs[g*each : (g+1)*each]
		wg.Go(func() {
			// Even publishers send one event per call, odd ones batches.
			step := 1
			if g%2 == 1 {
				step = batch
			}
			for i := 0; i < len(part); i += step {
				if err := pub.Publish(ctx, part[i:i+step]...); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("publisher %d: %w", g, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	published := time.Since(start)
	for _, err := range errs {
		t.Errorf("Publish: %v", err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}

	waitFor(t, timeout, func() bool { return got.unique() >= total }, func() string {
		return fmt.Sprintf("%d of %d events handled; missing, first few: %v", got.unique(), total, got.missing(ids(msgs)))
	})
	t.Logf("published %d events from %d goroutines in %s; all handled after %s; %d duplicate deliveries",
		total, publishers, published.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), duplicates(got.counts()))
}

// testClosedTransport: a closed transport stops its consumers and refuses
// further work with ErrClosed.
func testClosedTransport(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	c := consume(t, tr, sub, func(context.Context, *transport.Delivery) error { return nil })

	if err := tr.Close(callCtx(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Close returned while one of its consumers was still running (Done not closed)")
	}
	if err := tr.Publish(callCtx(t), newMessage(topic, 0)); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Publish after Close: %v, want an error wrapping transport.ErrClosed", err)
	}
	if err := tr.Declare(callCtx(t), sub); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Declare after Close: %v, want an error wrapping transport.ErrClosed", err)
	}
	if c2, err := tr.Consume(callCtx(t), sub, func(context.Context, *transport.Delivery) error { return nil }); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Consume after Close: %v, want an error wrapping transport.ErrClosed", err)
		if c2 != nil {
			c2.Stop(callCtx(t))
		}
	}
}
