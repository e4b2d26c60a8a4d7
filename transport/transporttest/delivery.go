package transporttest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// checkMessage reports every attribute of got that differs from want, the
// message as published.
func checkMessage(t testing.TB, where string, got transport.Message, want *transport.Message) {
	t.Helper()
	if got.ID != want.ID {
		t.Errorf("%s: ID %q, want %q", where, got.ID, want.ID)
	}
	if got.Type != want.Type {
		t.Errorf("%s: Type %q, want %q", where, got.Type, want.Type)
	}
	if got.Source != want.Source {
		t.Errorf("%s: Source %q, want %q", where, got.Source, want.Source)
	}
	if d := got.Time.Sub(want.Time).Abs(); got.Time.IsZero() || d >= time.Millisecond {
		t.Errorf("%s: Time %s, want %s (off by %s; the contract keeps at least milliseconds)", where, got.Time, want.Time, d)
	}
	if got.CorrelationID != want.CorrelationID {
		t.Errorf("%s: CorrelationID %q, want %q", where, got.CorrelationID, want.CorrelationID)
	}
	if got.CausationID != want.CausationID {
		t.Errorf("%s: CausationID %q, want %q", where, got.CausationID, want.CausationID)
	}
	if got.TraceParent != want.TraceParent {
		t.Errorf("%s: TraceParent %q, want %q", where, got.TraceParent, want.TraceParent)
	}
	wantCT := want.DataContentType
	if wantCT == "" {
		wantCT = transport.ContentTypeJSON
	}
	if got.DataContentType != wantCT {
		t.Errorf("%s: DataContentType %q, want %q", where, got.DataContentType, wantCT)
	}
	// Equal treats nil and empty alike. Extra extensions fail too: a
	// transport's own bookkeeping must not show up as event attributes.
	if !maps.Equal(got.Extensions, want.Extensions) {
		t.Errorf("%s: Extensions %v, want %v", where, got.Extensions, want.Extensions)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("%s: Data %.80q, want %.80q", where, got.Data, want.Data)
	}
}

// testPublishBeforeConsume: a declared subscription keeps what is published
// before anyone consumes, and delivers it with every attribute intact.
func testPublishBeforeConsume(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)

	// The first message carries only the required attributes, the others
	// every optional one as well.
	msgs := newMessages(topic, 6)
	for i, m := range msgs[1:] {
		m.CorrelationID = "corr-" + randomHex(8)
		m.CausationID = randomHex(16)
		m.TraceParent = "00-" + randomHex(16) + "-" + randomHex(8) + "-01"
		m.DataContentType = "application/vnd.transporttest+json"
		m.Extensions = map[string]string{"tenant": "acme", "seq": strconv.Itoa(i)}
	}
	publish(t, tr, msgs[0])
	publish(t, tr, msgs[1:]...)

	got := newCollector()
	consume(t, tr, sub, got.handler())
	got.waitUnique(t, len(msgs), "published before Consume")

	for _, m := range msgs {
		recs := got.of(m.ID)
		if len(recs) != 1 {
			t.Errorf("message %s delivered %d times, want once", m.ID, len(recs))
			continue
		}
		d := recs[0]
		where := "delivery of " + m.ID
		checkMessage(t, where, d.Message, m)
		if d.Attempt != 1 {
			t.Errorf("%s: Attempt %d, want 1", where, d.Attempt)
		}
		if d.Replays != 0 {
			t.Errorf("%s: Replays %d, want 0", where, d.Replays)
		}
		if d.Subscription != sub.SubscriptionRef {
			t.Errorf("%s: Subscription %v, want %v", where, d.Subscription, sub.SubscriptionRef)
		}
	}
}

// testNewSubscriptionStartsAtDeclare: publishing to a topic nobody
// subscribes to succeeds, and a subscription declared later (without
// StartAtBeginning) receives only what is published after its declaration.
func testNewSubscriptionStartsAtDeclare(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	before := newMessage(topic, 0)
	if err := tr.Publish(callCtx(t), before); err != nil {
		t.Fatalf("Publish to a topic without subscriptions, in a fresh namespace: %v", err)
	}
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)
	after := newMessage(topic, 1)
	publish(t, tr, after)

	got := newCollector()
	consume(t, tr, sub, got.handler())
	waitFor(t, waitTimeout, func() bool { return got.times(after.ID) >= 1 }, func() string {
		return "event published after Declare not delivered"
	})
	// The older event, if wrongly kept for the subscription, was ahead of
	// the newer one; a lease is ample for it to show up.
	quiet(t, lease)
	if n := got.times(before.ID); n != 0 {
		t.Errorf("event published before the subscription was declared delivered %d times; want none without StartAtBeginning", n)
	}
}

// testFanOut: every subscription of a topic gets its own copy of each event,
// whether the subscriptions differ by service or by name; a subscription of
// another topic gets none.
func testFanOut(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	fan := []transport.Subscription{
		newSub(topic, "billing", "charge"),
		newSub(topic, "billing", "audit"),   // same service, other name
		newSub(topic, "shipping", "charge"), // other service, same name
	}
	other := newSub("refunds", "billing", "refund")
	declare(t, tr, append(fan, other)...)

	orders := newMessages(topic, 20)
	publish(t, tr, orders...)
	// Published after the orders, the refund shows when the other topic's
	// consumer has caught up with anything misrouted to it.
	refund := newMessage("refunds", 0)
	publish(t, tr, refund)

	cols := make([]*collector, len(fan))
	for i, s := range fan {
		cols[i] = newCollector()
		consume(t, tr, s, cols[i].handler())
	}
	refunds := newCollector()
	consume(t, tr, other, refunds.handler())

	for i, s := range fan {
		cols[i].waitUnique(t, len(orders), "fan-out to "+s.SubscriptionRef.String())
	}
	refunds.waitUnique(t, 1, "refund")
	// Give a second copy, or a misrouted order, a lease to show up.
	quiet(t, lease)

	for i, s := range fan {
		for _, m := range orders {
			if n := cols[i].times(m.ID); n != 1 {
				t.Errorf("%s got order %s %d times, want once", s.SubscriptionRef, m.ID, n)
			}
		}
		if n := cols[i].total(); n != len(orders) {
			t.Errorf("%s got %d deliveries, want %d", s.SubscriptionRef, n, len(orders))
		}
	}
	if n := refunds.total(); n != 1 || refunds.times(refund.ID) != 1 {
		t.Errorf("%s (topic refunds) got %d deliveries, want only the one refund: events of topic %s leaked into it",
			other.SubscriptionRef, n, topic)
	}
}

// testCompetingConsumers: two processes consuming one subscription share its
// events, and no event is handled by both at the same time.
func testCompetingConsumers(t *testing.T, h Harness) {
	const n = 300
	ns := newNamespace()
	tr1, tr2 := h.Open(t, ns), h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	sub.Lease = 2 * lease
	declare(t, tr1, sub)

	var (
		mu       sync.Mutex
		inflight = make(map[string]string) // message id → consumer handling it
		overlaps []string
		share    [2]atomic.Int64
	)
	handled := newCollector()
	handler := func(i int) transport.Handler {
		me := fmt.Sprintf("consumer %d", i+1)
		return func(ctx context.Context, d *transport.Delivery) error {
			mu.Lock()
			if other, busy := inflight[d.ID]; busy {
				overlaps = append(overlaps, fmt.Sprintf("%s by %s and %s", d.ID, other, me))
			} else {
				inflight[d.ID] = me
			}
			mu.Unlock()
			// Hold the message a little, so that a second delivery of it
			// would overlap with this one.
			select {
			case <-time.After(3 * time.Millisecond):
			case <-ctx.Done():
			}
			mu.Lock()
			if inflight[d.ID] == me {
				delete(inflight, d.ID)
			}
			mu.Unlock()
			handled.add(d)
			share[i].Add(1)
			return nil
		}
	}
	consume(t, tr1, sub, handler(0))
	consume(t, tr2, sub, handler(1))

	msgs := newMessages(topic, n)
	for i := 0; i < n; i += 50 {
		publish(t, tr1, msgs[i:i+50]...)
	}
	waitFor(t, waitTimeout, func() bool { return handled.unique() >= n }, func() string {
		return fmt.Sprintf("%d of %d events handled; never handled, first few: %v", handled.unique(), n, handled.missing(ids(msgs)))
	})

	mu.Lock()
	defer mu.Unlock()
	for _, o := range overlaps {
		t.Errorf("handled twice at once: %s", o)
	}
	t.Logf("consumer 1 handled %d, consumer 2 handled %d, %d duplicates",
		share[0].Load(), share[1].Load(), duplicates(handled.counts()))
}

// testLongHandlerKeepsLease: a handler that runs for several leases keeps its
// message; another consumer of the subscription does not get it meanwhile.
func testLongHandlerKeepsLease(t *testing.T, h Harness) {
	const hold = 3 * lease
	ns := newNamespace()
	tr1, tr2 := h.Open(t, ns), h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	declare(t, tr1, sub)
	msg := newMessage(topic, 0)
	publish(t, tr1, msg)

	got := newCollector()
	slow := func(ctx context.Context, d *transport.Delivery) error {
		got.add(d)
		select {
		case <-time.After(hold): // the work outlasts three leases
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	consume(t, tr1, sub, slow)
	consume(t, tr2, sub, slow)
	waitFor(t, waitTimeout, func() bool { return got.times(msg.ID) >= 1 }, func() string {
		return "message never delivered"
	})
	// The first handler finishes after hold; a lease more shows whether its
	// ack was lost or the message went to the other consumer meanwhile.
	quiet(t, hold+lease)
	if n := got.times(msg.ID); n != 1 {
		t.Errorf("message delivered %d times while its first handler, running for %s with lease %s, kept it; want once",
			n, hold, sub.Lease)
	}
}

// testAckNotRedelivered: an acked event is never delivered again.
func testAckNotRedelivered(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)
	msgs := newMessages(topic, 20)
	publish(t, tr, msgs...)

	got := newCollector()
	consume(t, tr, sub, got.handler())
	got.waitUnique(t, len(msgs), "acked events")
	// An ack the broker did not record would show as a redelivery after a
	// lease.
	quiet(t, quietPeriod)

	if n := got.total(); n != len(msgs) {
		t.Errorf("%d deliveries of %d acked events after %s, want %d: acked events came back", n, len(msgs), quietPeriod, len(msgs))
	}
	for id, k := range got.counts() {
		if k > 1 {
			t.Errorf("event %s delivered %d times after being acked", id, k)
		}
	}
}

// testIsolation: two namespaces with the same topic and subscription names
// never see each other's events.
func testIsolation(t *testing.T, h Harness) {
	nsA, nsB := newNamespace(), newNamespace()
	trs := []transport.Transport{h.Open(t, nsA), h.Open(t, nsB)}
	sub := newSub(topic, "billing", "charge")
	msgs := [][]*transport.Message{newMessages(topic, 10), newMessages(topic, 10)}
	cols := []*collector{newCollector(), newCollector()}
	for _, tr := range trs {
		declare(t, tr, sub)
	}
	for i, tr := range trs {
		publish(t, tr, msgs[i]...)
		consume(t, tr, sub, cols[i].handler())
	}
	for i, ns := range []string{nsA, nsB} {
		cols[i].waitUnique(t, len(msgs[i]), "namespace "+ns)
	}
	// Leave a lease for events of the other namespace to leak in.
	quiet(t, lease)

	for i, ns := range []string{nsA, nsB} {
		own := make(map[string]bool)
		for _, m := range msgs[i] {
			own[m.ID] = true
		}
		for id := range cols[i].counts() {
			if !own[id] {
				t.Errorf("namespace %s received event %s of the other namespace", ns, id)
			}
		}
	}
}

// testForeignExtensions: extension attributes a foreign producer sends as
// ce- headers reach the handler, by lower-case name.
func testForeignExtensions(t *testing.T, h Harness) {
	ns := newNamespace()
	tr := h.Open(t, ns)
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)

	m := newMessage(topic, 0)
	hdr := encodeHeaders(m)
	hdr["ce-tenant"] = "acme"
	hdr["ce-partitionkey"] = "k1"
	h.PublishRaw(t, ns, topic, hdr, m.Data)

	got := newCollector()
	consume(t, tr, sub, got.handler())
	got.waitUnique(t, 1, "event with foreign extensions")
	d := got.of(m.ID)[0]
	if d.Extensions["tenant"] != "acme" || d.Extensions[transport.PartitionKey] != "k1" {
		t.Errorf("Extensions %v, want tenant=acme and partitionkey=k1", d.Extensions)
	}
}

// testAttributeValuesRoundTrip: attribute and extension values that a
// header cannot carry as they are (spaces, quotes, percent signs, text
// outside ASCII) reach the handler unchanged, whatever the transport does
// to carry them.
func testAttributeValuesRoundTrip(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)

	m := newMessage(topic, 0)
	m.CorrelationID = `order "7": 50% off, «bientôt» 😀`
	m.Extensions = map[string]string{"tenant": "ACME %20 Corp", transport.PartitionKey: "clé"}
	publish(t, tr, m)

	got := newCollector()
	consume(t, tr, sub, got.handler())
	got.waitUnique(t, 1, "event with unusual attribute values")
	d := got.of(m.ID)[0]
	if d.CorrelationID != m.CorrelationID || d.Extensions["tenant"] != m.Extensions["tenant"] ||
		d.Extensions[transport.PartitionKey] != m.Extensions[transport.PartitionKey] {
		t.Errorf("delivered CorrelationID %q, Extensions %q; want %q, %q", d.CorrelationID, d.Extensions, m.CorrelationID, m.Extensions)
	}
}
