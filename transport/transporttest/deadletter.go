package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/troupe-go/troupe/transport"
)

// testDeadLetterAfterLastAttempt: a message that fails every attempt lands in
// the subscription's dead-letter store with what is needed to understand why,
// and is not delivered again.
func testDeadLetterAfterLastAttempt(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	sub.Retry.MaxAttempts = 3
	declare(t, tr, sub)
	msg := newMessage(topic, 0)
	publish(t, tr, msg)

	errText := "transporttest: payment provider " + randomHex(4) + " unreachable"
	var log attemptLog
	consume(t, tr, sub, log.handler(func(int) error { return errors.New(errText) }))

	dls := waitDeadLetters(t, tr, sub.SubscriptionRef, 1)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
	}
	dl := dls[0]
	if dl.ID == "" {
		t.Error("dead letter has no ID")
	}
	if dl.Reason != transport.ReasonFailed {
		t.Errorf("Reason %q, want %q", dl.Reason, transport.ReasonFailed)
	}
	if dl.Attempts != 3 {
		t.Errorf("Attempts %d, want 3", dl.Attempts)
	}
	if !strings.Contains(dl.Error, errText) {
		t.Errorf("Error %q does not contain the handler's error %q", dl.Error, errText)
	}
	if dl.Subscription != sub.SubscriptionRef {
		t.Errorf("Subscription %v, want %v", dl.Subscription, sub.SubscriptionRef)
	}
	if dl.Replays != 0 {
		t.Errorf("Replays %d, want 0", dl.Replays)
	}
	if dl.FirstAttempt.IsZero() || dl.LastAttempt.IsZero() || dl.FirstAttempt.After(dl.LastAttempt) {
		t.Errorf("FirstAttempt %s, LastAttempt %s: want both set, first not after last", dl.FirstAttempt, dl.LastAttempt)
	}
	if dl.DeadAt.IsZero() {
		t.Error("DeadAt not set")
	}
	if dl.Message.ID != msg.ID || dl.Message.Type != msg.Type || !bytes.Equal(dl.Message.Data, msg.Data) {
		t.Errorf("dead letter holds message %q of type %q with data %.80q, want %q, %q, %q",
			dl.Message.ID, dl.Message.Type, dl.Message.Data, msg.ID, msg.Type, msg.Data)
	}

	// A fourth attempt would come after the 100ms backoff cap, or after a
	// lease if the transport failed to settle the last one.
	quiet(t, quietPeriod)
	if got := log.numbers(); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("attempts seen %v, want [1 2 3] and nothing after the dead letter", got)
	}
}

// testReplay: a replayed dead letter goes back to the one subscription that
// failed it, not to the other subscriptions of its topic.
func testReplay(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	subA := newSub(topic, "billing", "charge")
	subB := newSub(topic, "shipping", "ship")
	declare(t, tr, subA, subB)
	msg := newMessage(topic, 0)
	publish(t, tr, msg)

	var healthy atomic.Bool
	gotA, gotB := newCollector(), newCollector()
	consume(t, tr, subA, func(_ context.Context, d *transport.Delivery) error {
		gotA.add(d)
		if !healthy.Load() {
			return transport.Permanent(errors.New("transporttest: billing is broken"))
		}
		return nil
	})
	consume(t, tr, subB, gotB.handler())

	dls := waitDeadLetters(t, tr, subA.SubscriptionRef, 1)
	dl := dls[0]
	if dl.Message.ID != msg.ID {
		t.Fatalf("dead letter of message %q, want %q", dl.Message.ID, msg.ID)
	}
	gotB.waitUnique(t, 1, subB.SubscriptionRef.String())

	healthy.Store(true)
	if err := tr.Replay(callCtx(t), subA.SubscriptionRef, dl.ID); err != nil {
		t.Fatalf("Replay %s %s: %v", subA.SubscriptionRef, dl.ID, err)
	}
	waitFor(t, waitTimeout, func() bool { return gotA.times(msg.ID) >= 2 }, func() string {
		return fmt.Sprintf("replayed message not delivered again to %s", subA.SubscriptionRef)
	})
	d := gotA.of(msg.ID)[1]
	if d.Attempt != 1 || d.Replays != 1 {
		t.Errorf("replayed delivery has Attempt %d, Replays %d; want 1 and 1", d.Attempt, d.Replays)
	}
	if d.Subscription != subA.SubscriptionRef {
		t.Errorf("replayed delivery for %v, want %v", d.Subscription, subA.SubscriptionRef)
	}
	checkMessage(t, "replayed delivery", d.Message, msg)
	waitNoDeadLetters(t, tr, subA.SubscriptionRef)

	// A replay fanned out again would reach B within a lease.
	quiet(t, quietPeriod)
	if n := gotB.times(msg.ID); n != 1 {
		t.Errorf("%s, which handled the message, got it %d times after a replay for %s; want once",
			subB.SubscriptionRef, n, subA.SubscriptionRef)
	}
	if n := gotA.times(msg.ID); n != 2 {
		t.Errorf("%s got the message %d times, want 2 (the failure and the replay)", subA.SubscriptionRef, n)
	}

	unknown := "no-such-dead-letter-" + randomHex(4)
	if err := tr.Replay(callCtx(t), subA.SubscriptionRef, unknown); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("Replay of an unknown id: %v, want an error wrapping transport.ErrNotFound", err)
	}
	if err := tr.Discard(callCtx(t), subA.SubscriptionRef, unknown); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("Discard of an unknown id: %v, want an error wrapping transport.ErrNotFound", err)
	}
}

// testDiscard: a discarded dead letter is gone and never delivered.
func testDiscard(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)
	msg := newMessage(topic, 0)
	publish(t, tr, msg)

	got := newCollector()
	consume(t, tr, sub, func(_ context.Context, d *transport.Delivery) error {
		got.add(d)
		return transport.Permanent(errors.New("transporttest: unwanted"))
	})
	dl := waitDeadLetters(t, tr, sub.SubscriptionRef, 1)[0]
	if err := tr.Discard(callCtx(t), sub.SubscriptionRef, dl.ID); err != nil {
		t.Fatalf("Discard %s %s: %v", sub.SubscriptionRef, dl.ID, err)
	}
	waitNoDeadLetters(t, tr, sub.SubscriptionRef)

	quiet(t, quietPeriod)
	if n := got.times(msg.ID); n != 1 {
		t.Errorf("discarded message handled %d times, want once (before it was dead-lettered)", n)
	}
	if err := tr.Discard(callCtx(t), sub.SubscriptionRef, dl.ID); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("second Discard of %s: %v, want an error wrapping transport.ErrNotFound", dl.ID, err)
	}
	if err := tr.Replay(callCtx(t), sub.SubscriptionRef, dl.ID); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("Replay of discarded %s: %v, want an error wrapping transport.ErrNotFound", dl.ID, err)
	}
}

// markerHeader lets the suite tell its raw messages apart in the dead-letter
// store.
const markerHeader = "x-transporttest"

// testMalformedGoesToDeadLetters: messages without the CloudEvents attributes
// troupe needs are dead-lettered as malformed, with their headers, and the
// consumer goes on.
func testMalformedGoesToDeadLetters(t *testing.T, h Harness) {
	ns := newNamespace()
	tr := h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)

	wireType := transport.WireType(topic, 1)
	h.PublishRaw(t, ns, topic, map[string]string{
		markerHeader:   "no-ce",
		"content-type": transport.ContentTypeJSON,
	}, []byte(`{"n":1}`))
	h.PublishRaw(t, ns, topic, map[string]string{
		markerHeader:                "no-id",
		transport.HeaderSpecVersion: transport.SpecVersion,
		transport.HeaderType:        wireType,
		transport.HeaderSource:      "transporttest",
		"content-type":              transport.ContentTypeJSON,
	}, []byte(`{"n":2}`))
	valid := newMessage(topic, 3)
	h.PublishRaw(t, ns, topic, encodeHeaders(valid), valid.Data)

	got := newCollector()
	consume(t, tr, sub, got.handler())
	waitFor(t, waitTimeout, func() bool { return got.times(valid.ID) >= 1 }, func() string {
		return "valid event published after two malformed ones was not handled"
	})
	dls := waitDeadLetters(t, tr, sub.SubscriptionRef, 2)

	seen := make(map[string]transport.DeadLetter)
	for _, dl := range dls {
		if dl.Reason != transport.ReasonMalformed {
			t.Errorf("dead letter %s: Reason %q, want %q", dl.ID, dl.Reason, transport.ReasonMalformed)
		}
		if dl.ID == "" {
			t.Error("dead letter of a malformed message has no ID")
		}
		if dl.Attempts != 0 {
			t.Errorf("dead letter %s: Attempts %d, want 0: a message that cannot be read was never handled", dl.ID, dl.Attempts)
		}
		if dl.Headers == nil {
			t.Errorf("dead letter %s: Headers nil, want the raw headers for diagnosis", dl.ID)
			continue
		}
		marker, ok := header(dl.Headers, markerHeader)
		if !ok {
			t.Errorf("dead letter %s: Headers %v lack %s", dl.ID, dl.Headers, markerHeader)
			continue
		}
		if _, dup := seen[marker]; dup {
			t.Errorf("message %q dead-lettered twice", marker)
		}
		seen[marker] = dl
	}
	for _, marker := range []string{"no-ce", "no-id"} {
		if _, ok := seen[marker]; !ok {
			t.Errorf("no dead letter for the message with %s: %s", markerHeader, marker)
		}
	}
	if a, b := seen["no-ce"], seen["no-id"]; a.ID != "" && a.ID == b.ID {
		t.Errorf("both malformed messages have dead-letter ID %q; replay and discard need distinct ids", a.ID)
	}
	// The attributes that were present are kept.
	if dl, ok := seen["no-id"]; ok && (dl.Message.Type != wireType || dl.Message.Source != "transporttest") {
		t.Errorf("dead letter of the message without ce-id has Type %q, Source %q; want %q, %q",
			dl.Message.Type, dl.Message.Source, wireType, "transporttest")
	}
	if n := got.total(); n != 1 {
		t.Errorf("handler called %d times, want once, for the valid event only: %v", n, got.counts())
	}
}

// testOversizedGoesToDeadLetters: a message larger than the subscription
// accepts is dead-lettered as oversized, and the consumer goes on.
func testOversizedGoesToDeadLetters(t *testing.T, h Harness) {
	ns := newNamespace()
	tr := h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	sub.MaxMessageBytes = 1024
	declare(t, tr, sub)

	big := newMessage(topic, 0)
	big.Data = jsonString(4096)
	h.PublishRaw(t, ns, topic, encodeHeaders(big), big.Data)
	small := newMessage(topic, 1)
	publish(t, tr, small)

	got := newCollector()
	consume(t, tr, sub, got.handler())
	waitFor(t, waitTimeout, func() bool { return got.times(small.ID) >= 1 }, func() string {
		return "small event published after an oversized one was not handled"
	})
	dls := waitDeadLetters(t, tr, sub.SubscriptionRef, 1)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
	}
	if dls[0].Reason != transport.ReasonOversized {
		t.Errorf("Reason %q, want %q", dls[0].Reason, transport.ReasonOversized)
	}
	if dls[0].Message.ID != big.ID {
		t.Errorf("dead letter of message %q, want %q", dls[0].Message.ID, big.ID)
	}
	if dls[0].Attempts != 0 {
		t.Errorf("dead letter Attempts %d, want 0: an oversized message is never handled", dls[0].Attempts)
	}
	if n := got.times(big.ID); n != 0 {
		t.Errorf("oversized message (%d bytes, limit %d) handed to the handler %d times", len(big.Data), sub.MaxMessageBytes, n)
	}
}

// testMisroutedGoesToDeadLetters: a message whose ce-type names another
// topic than the one it was published to (a foreign producer's mistake) is
// dead-lettered as misrouted, not handled as the subscription's type.
func testMisroutedGoesToDeadLetters(t *testing.T, h Harness) {
	ns := newNamespace()
	tr := h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)

	stray := newMessage(topic, 0)
	stray.Type = transport.WireType("payments", 1)
	h.PublishRaw(t, ns, topic, encodeHeaders(stray), stray.Data)
	valid := newMessage(topic, 1)
	publish(t, tr, valid)

	got := newCollector()
	consume(t, tr, sub, got.handler())
	waitFor(t, waitTimeout, func() bool { return got.times(valid.ID) >= 1 }, func() string {
		return "valid event published after a misrouted one was not handled"
	})
	dls := waitDeadLetters(t, tr, sub.SubscriptionRef, 1)
	if len(dls) != 1 || dls[0].Message.ID != stray.ID {
		t.Fatalf("dead letters %+v, want the misrouted message %s", dls, stray.ID)
	}
	if dls[0].Reason != transport.ReasonMisrouted || !strings.Contains(dls[0].Error, `"payments"`) || dls[0].Attempts != 0 {
		t.Errorf("dead letter Reason %q, Error %q, Attempts %d; want %q naming topic payments, 0 attempts",
			dls[0].Reason, dls[0].Error, dls[0].Attempts, transport.ReasonMisrouted)
	}
	if n := got.times(stray.ID); n != 0 {
		t.Errorf("a payments.v1 event was handled %d times by a subscription to %s", n, topic)
	}
}

// jsonString returns a JSON string literal of exactly n bytes (n >= 2).
func jsonString(n int) []byte {
	b := bytes.Repeat([]byte("x"), n)
	b[0], b[n-1] = '"', '"'
	return b
}

// testDeadLetterStoreRefuses: when the broker refuses to store a dead
// letter, the delivery is not lost: it stays with the subscription (held,
// not handled again) and is dead-lettered once the store takes it, with
// its reason. Only for harnesses with BreakDeadLetters.
func testDeadLetterStoreRefuses(t *testing.T, h Harness) {
	if h.BreakDeadLetters == nil {
		t.Skip("the harness has no BreakDeadLetters")
	}
	ns := newNamespace()
	tr := h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	got := newCollector()
	consume(t, tr, sub, func(_ context.Context, d *transport.Delivery) error {
		got.add(d)
		return transport.Permanent(errors.New("transporttest: refused for good"))
	})
	// Broken once the consumer runs: a transport may declare the store
	// again when it starts consuming.
	repair := h.BreakDeadLetters(t, ns, sub.SubscriptionRef)
	msg := newMessage(topic, 0)
	publish(t, tr, msg)
	got.waitUnique(t, 1, "the event whose dead letter the broker refuses")
	// Give the consumer the time to try the store a few times and fail.
	quiet(t, lease)
	repair()
	dls := waitDeadLetters(t, tr, sub.SubscriptionRef, 1)
	if len(dls) != 1 || dls[0].Message.ID != msg.ID || dls[0].Reason != transport.ReasonPermanent || dls[0].Attempts != 1 {
		t.Errorf("dead letters %+v, want one of %s, reason %q, 1 attempt", dls, msg.ID, transport.ReasonPermanent)
	}
	if n := got.times(msg.ID); n != 1 {
		t.Errorf("handled %d times, want once: the delivery is held while its dead letter waits for the store", n)
	}
}
