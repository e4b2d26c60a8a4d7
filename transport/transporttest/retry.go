package transporttest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// attemptLog records when each attempt at one message started and ended.
type attemptLog struct {
	mu   sync.Mutex
	list []attemptTimes
}

type attemptTimes struct {
	attempt    int
	start, end time.Time
}

// handler returns a handler that logs each attempt and returns result(attempt).
// The end time is taken just before the handler returns, so the gap to the
// next start is the delay the transport and broker added.
func (l *attemptLog) handler(result func(attempt int) error) transport.Handler {
	return func(_ context.Context, d *transport.Delivery) error {
		start := time.Now()
		err := result(d.Attempt)
		l.mu.Lock()
		l.list = append(l.list, attemptTimes{attempt: d.Attempt, start: start, end: time.Now()})
		l.mu.Unlock()
		return err
	}
}

func (l *attemptLog) snapshot() []attemptTimes {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]attemptTimes(nil), l.list...)
}

func (l *attemptLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.list)
}

func (l *attemptLog) numbers() []int {
	var out []int
	for _, a := range l.snapshot() {
		out = append(out, a.attempt)
	}
	return out
}

// testRetryWithBackoff: a failing handler is retried with the attempt number
// counting up, and each retry waits at least the backoff for that attempt.
func testRetryWithBackoff(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	sub.Retry = transport.RetryPolicy{
		MaxAttempts: 5,
		MinBackoff:  200 * time.Millisecond,
		MaxBackoff:  2 * time.Second,
		Jitter:      transport.NoJitter,
	}
	declare(t, tr, sub)
	publish(t, tr, newMessage(topic, 0))

	var log attemptLog
	consume(t, tr, sub, log.handler(func(attempt int) error {
		if attempt < 3 {
			return fmt.Errorf("transporttest: attempt %d fails on purpose", attempt)
		}
		return nil
	}))
	waitFor(t, waitTimeout, func() bool { return log.len() >= 3 }, func() string {
		return fmt.Sprintf("attempts seen %v, want [1 2 3]", log.numbers())
	})

	atts := log.snapshot()[:3]
	for i, a := range atts {
		if a.attempt != i+1 {
			t.Fatalf("attempts seen %v, want [1 2 3]", log.numbers())
		}
	}
	// No jitter: attempt n that fails is retried after exactly
	// MinBackoff·2^(n-1). The suite checks only that it is not shorter; a
	// busy machine may well make it longer.
	for i := range 2 {
		want := sub.Retry.Delay(i+1, 0)
		if gap := atts[i+1].start.Sub(atts[i].end); gap < want {
			t.Errorf("attempt %d started %s after attempt %d failed, want at least the backoff %s",
				i+2, gap, i+1, want)
		}
	}
}

// testRetryAfter: transport.RetryAfter sets the delay before the next attempt,
// however short the subscription's backoff.
func testRetryAfter(t *testing.T, h Harness) {
	const delay = 300 * time.Millisecond
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge") // backoff 20ms
	declare(t, tr, sub)
	publish(t, tr, newMessage(topic, 0))

	var log attemptLog
	consume(t, tr, sub, log.handler(func(attempt int) error {
		if attempt == 1 {
			return transport.RetryAfter(delay, errors.New("transporttest: not yet"))
		}
		return nil
	}))
	waitFor(t, waitTimeout, func() bool { return log.len() >= 2 }, func() string {
		return fmt.Sprintf("attempts seen %v, want [1 2]", log.numbers())
	})

	atts := log.snapshot()
	if atts[0].attempt != 1 || atts[1].attempt != 2 {
		t.Fatalf("attempts seen %v, want [1 2]", log.numbers())
	}
	if gap := atts[1].start.Sub(atts[0].end); gap < delay {
		t.Errorf("attempt 2 started %s after RetryAfter(%s), want at least %s", gap, delay, delay)
	}
}

// testPanicIsError: a panicking handler counts as a failed attempt; the
// message is retried and the consumer goes on with other messages.
func testPanicIsError(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)
	first, second := newMessage(topic, 0), newMessage(topic, 1)
	publish(t, tr, first)

	got := newCollector()
	consume(t, tr, sub, func(_ context.Context, d *transport.Delivery) error {
		got.add(d)
		if d.ID == first.ID && d.Attempt == 1 {
			panic("transporttest: handler panics on purpose")
		}
		return nil
	})
	waitFor(t, waitTimeout, func() bool { return got.times(first.ID) >= 2 }, func() string {
		return fmt.Sprintf("message whose handler panicked delivered %d times, want a retry", got.times(first.ID))
	})
	if recs := got.of(first.ID); recs[1].Attempt != 2 {
		t.Errorf("retry after a panic has Attempt %d, want 2", recs[1].Attempt)
	}

	publish(t, tr, second)
	waitFor(t, waitTimeout, func() bool { return got.times(second.ID) >= 1 }, func() string {
		return "the consumer handled nothing after a handler panicked"
	})
	if dls := deadLetters(t, tr, sub.SubscriptionRef); len(dls) != 0 {
		t.Errorf("%d dead letters after a panic that was retried successfully, want none", len(dls))
	}
}

// testPermanentError: a permanent error dead-letters the message at once,
// without using the remaining attempts.
func testPermanentError(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge") // 5 attempts
	declare(t, tr, sub)
	msg := newMessage(topic, 0)
	publish(t, tr, msg)

	errText := "transporttest: card " + randomHex(4) + " is stolen"
	got := newCollector()
	consume(t, tr, sub, func(_ context.Context, d *transport.Delivery) error {
		got.add(d)
		return transport.Permanent(errors.New(errText))
	})

	dls := waitDeadLetters(t, tr, sub.SubscriptionRef, 1)
	dl := dls[0]
	if dl.Reason != transport.ReasonPermanent {
		t.Errorf("dead letter Reason %q, want %q", dl.Reason, transport.ReasonPermanent)
	}
	if dl.Attempts != 1 {
		t.Errorf("dead letter Attempts %d, want 1", dl.Attempts)
	}
	if !strings.Contains(dl.Error, errText) {
		t.Errorf("dead letter Error %q does not contain the handler's error %q", dl.Error, errText)
	}
	if dl.Message.ID != msg.ID {
		t.Errorf("dead letter of message %q, want %q", dl.Message.ID, msg.ID)
	}
	// Retries would come after 20ms, a lost settlement after a lease.
	quiet(t, quietPeriod)
	if n := got.times(msg.ID); n != 1 {
		t.Errorf("permanently failed message handled %d times, want once", n)
	}
	if n := len(deadLetters(t, tr, sub.SubscriptionRef)); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

// blockingHandler signals each delivery it starts on started and then holds
// it until the test ends, so that its transport can be killed mid-handling.
func blockingHandler(t testing.TB, started chan<- transport.Delivery) transport.Handler {
	release := make(chan struct{})
	// Registered after Open's cleanup, so it runs before the transport's
	// Close, which may wait for this handler.
	t.Cleanup(func() { close(release) })
	return func(ctx context.Context, d *transport.Delivery) error {
		select {
		case started <- *d:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
}

// waitStarted waits for a blocking handler to start.
func waitStarted(t testing.TB, started <-chan transport.Delivery) transport.Delivery {
	t.Helper()
	select {
	case d := <-started:
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("after %s: the first consumer never started handling the message", waitTimeout)
	}
	panic("unreachable")
}

// testRedeliveryAfterKill: a message whose consumer dies while handling it is
// delivered to another consumer of the subscription after the lease.
func testRedeliveryAfterKill(t *testing.T, h Harness) {
	ns := newNamespace()
	trA := h.Open(t, ns)
	sub := newSub(topic, "billing", "charge") // 5 attempts
	declare(t, trA, sub)
	msg := newMessage(topic, 0)
	publish(t, trA, msg)

	started := make(chan transport.Delivery, 1)
	consume(t, trA, sub, blockingHandler(t, started))
	if d := waitStarted(t, started); d.Attempt != 1 {
		t.Errorf("first delivery has Attempt %d, want 1", d.Attempt)
	}
	h.Kill(t, trA)

	trB := h.Open(t, ns)
	got := newCollector()
	consume(t, trB, sub, got.handler())
	waitFor(t, waitTimeout, func() bool { return got.times(msg.ID) >= 1 }, func() string {
		return fmt.Sprintf("message held by a killed consumer not redelivered to another one (lease %s)", sub.Lease)
	})
	d := got.of(msg.ID)[0]
	if d.Attempt < 2 {
		t.Errorf("redelivery after a kill has Attempt %d, want at least 2", d.Attempt)
	}
	checkMessage(t, "redelivery after a kill", d.Message, msg)
	if dls := deadLetters(t, trB, sub.SubscriptionRef); len(dls) != 0 {
		t.Errorf("%d dead letters after a successful redelivery, want none: %+v", len(dls), dls)
	}
}

// testAbandonedAfterKill: a message whose consumer dies during its last
// attempt comes back with Delivery.Abandoned set, once, instead of being
// handled once more than the policy allows. A handler that refuses it gets
// it dead-lettered with ReasonAbandoned; one that settles it another way
// (a compensation) gets it acknowledged.
func testAbandonedAfterKill(t *testing.T, h Harness) {
	for _, settle := range []bool{false, true} {
		ns := newNamespace()
		trA := h.Open(t, ns)
		sub := newSub(topic, "billing", "charge")
		sub.Retry.MaxAttempts = 1
		declare(t, trA, sub)
		msg := newMessage(topic, 0)
		publish(t, trA, msg)

		started := make(chan transport.Delivery, 1)
		consume(t, trA, sub, blockingHandler(t, started))
		waitStarted(t, started)
		h.Kill(t, trA)

		trB := h.Open(t, ns)
		got := newCollector()
		var mu sync.Mutex
		var abandoned []transport.Delivery
		consume(t, trB, sub, func(ctx context.Context, d *transport.Delivery) error {
			if d.Abandoned != nil {
				mu.Lock()
				abandoned = append(abandoned, *d)
				mu.Unlock()
				if settle {
					return nil
				}
				return d.Abandoned
			}
			return got.handler()(ctx, d)
		})
		seen := func() int { mu.Lock(); defer mu.Unlock(); return len(abandoned) }
		if !settle {
			dls := waitDeadLetters(t, trB, sub.SubscriptionRef, 1)
			dl := dls[0]
			if dl.Reason != transport.ReasonAbandoned {
				t.Errorf("dead letter Reason %q, want %q", dl.Reason, transport.ReasonAbandoned)
			}
			if dl.Message.ID != msg.ID {
				t.Errorf("dead letter of message %q, want %q", dl.Message.ID, msg.ID)
			}
			if dl.Attempts < 1 {
				t.Errorf("dead letter Attempts %d, want at least 1", dl.Attempts)
			}
		} else {
			waitFor(t, waitTimeout, func() bool { return seen() >= 1 }, func() string {
				return "the abandoned message never came back to be settled"
			})
			quiet(t, lease)
			if dls := deadLetters(t, trB, sub.SubscriptionRef); len(dls) != 0 {
				t.Errorf("%d dead letters after the handler settled the abandoned message, want none", len(dls))
			}
		}
		if n := seen(); n != 1 {
			t.Errorf("abandoned message handed to the handler %d times, want once (settle %v)", n, settle)
		} else if a := abandoned[0]; a.ID != msg.ID || a.Attempt <= sub.Retry.MaxAttempts {
			t.Errorf("abandoned delivery %s attempt %d, want %s after attempt %d", a.ID, a.Attempt, msg.ID, sub.Retry.MaxAttempts)
		}
		if n := got.times(msg.ID); n != 0 {
			t.Errorf("message handled %d more times as a normal delivery after its only attempt was abandoned, want none", n)
		}
	}
}

// testRetriesAndDeadLetters: retries and dead letters interplay as the
// contract says. RetryAfter on the last attempt dead-letters (the limit
// wins); a permanent error on a retry dead-letters at once, counting the
// attempts made; a replayed dead letter starts again at attempt 1 with its
// own retries and, failing again, is dead-lettered again, once, with the
// replay counted; one that succeeds leaves no dead letter.
func testRetriesAndDeadLetters(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	sub.Retry.MaxAttempts = 3
	declare(t, tr, sub)
	stubborn, fickle := newMessage(topic, 0), newMessage(topic, 1)
	publish(t, tr, stubborn, fickle)

	var healthy atomic.Bool
	got := newCollector()
	consume(t, tr, sub, func(_ context.Context, d *transport.Delivery) error {
		got.add(d)
		switch {
		case d.ID == fickle.ID && d.Replays > 0 && healthy.Load():
			return nil
		case d.ID == fickle.ID && d.Attempt == 2:
			return transport.Permanent(errors.New("transporttest: refused on the retry"))
		case d.Attempt == sub.Retry.MaxAttempts:
			return transport.RetryAfter(time.Hour, errors.New("transporttest: asks for later on its last attempt"))
		}
		return errors.New("transporttest: fails")
	})
	dls := waitDeadLetters(t, tr, sub.SubscriptionRef, 2)
	byID := map[string]transport.DeadLetter{}
	for _, dl := range dls {
		byID[dl.Message.ID] = dl
	}
	if dl := byID[stubborn.ID]; dl.Reason != transport.ReasonFailed || dl.Attempts != 3 || dl.Replays != 0 {
		t.Errorf("dead letter of the event that asked for later on its last attempt: %+v; want reason %q, 3 attempts",
			dl, transport.ReasonFailed)
	}
	if dl := byID[fickle.ID]; dl.Reason != transport.ReasonPermanent || dl.Attempts != 2 {
		t.Errorf("dead letter of the event refused on its retry: %+v; want reason %q, 2 attempts", dl, transport.ReasonPermanent)
	}

	// Replayed: the stubborn one fails its three attempts again; the other
	// now succeeds.
	healthy.Store(true)
	for _, dl := range dls {
		if err := tr.Replay(callCtx(t), sub.SubscriptionRef, dl.ID); err != nil {
			t.Fatalf("Replay %s: %v", dl.ID, err)
		}
	}
	waitFor(t, waitTimeout, func() bool { return got.times(stubborn.ID) >= 6 && got.times(fickle.ID) >= 3 }, func() string {
		return fmt.Sprintf("after the replays: %d attempts at the stubborn event (want 6), %d at the other (want 3)",
			got.times(stubborn.ID), got.times(fickle.ID))
	})
	var again []int
	for _, d := range got.of(stubborn.ID)[3:] {
		if d.Replays != 1 {
			t.Errorf("replayed delivery with Replays %d, want 1", d.Replays)
		}
		again = append(again, d.Attempt)
	}
	if fmt.Sprint(again) != "[1 2 3]" {
		t.Errorf("attempts after the replay %v, want [1 2 3]: a replay starts again at 1", again)
	}
	waitForEvery(t, 50*time.Millisecond, func() bool {
		dls, err := listDeadLetters(t, tr, sub.SubscriptionRef)
		return err == nil && len(dls) == 1 && dls[0].Message.ID == stubborn.ID && dls[0].Replays == 1
	}, func() string {
		dls, err := listDeadLetters(t, tr, sub.SubscriptionRef)
		return fmt.Sprintf("dead letters %+v (%v), want one: the stubborn event's, replayed once", dls, err)
	})
	if dl := deadLetters(t, tr, sub.SubscriptionRef)[0]; dl.Attempts != 3 || dl.Reason != transport.ReasonFailed {
		t.Errorf("second dead letter %+v, want 3 attempts, reason %q", dl, transport.ReasonFailed)
	}
}
