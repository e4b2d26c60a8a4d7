package transporttest

import (
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// testTap: a transport that implements transport.Tapper shows a tap the
// events of its topics as they are published, attributes intact, without
// taking them from the subscriptions; Close ends it. Only for transports
// that claim Features.Tap.
func testTap(t *testing.T, h Harness) {
	tr := h.Open(t, newNamespace())
	tapper, ok := tr.(transport.Tapper)
	requireFeature(t, h.Features.Tap, "Tap", ok)
	if _, err := tapper.Tap(callCtx(t), []string{"not a name"}, func(*transport.Message) {}); err == nil {
		t.Error("Tap of an invalid topic name succeeded")
	}
	sub := newSub(topic, "billing", "charge")
	declare(t, tr, sub)
	var (
		mu   sync.Mutex
		seen []*transport.Message
	)
	tp, err := tapper.Tap(callCtx(t), []string{topic}, func(m *transport.Message) {
		mu.Lock()
		seen = append(seen, m)
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("Tap: %v", err)
	}
	t.Cleanup(func() { _ = tp.Close() })

	other := newMessage("other", 0)
	msgs := newMessages(topic, 3)
	msgs[0].CorrelationID, msgs[0].CausationID = "corr-1", "cause-1"
	publish(t, tr, other)
	publish(t, tr, msgs...)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	waitFor(t, waitTimeout, func() bool { return count() >= len(msgs) }, func() string {
		return "tap saw fewer events than were published to its topic"
	})
	mu.Lock()
	byID := make(map[string]*transport.Message)
	for _, m := range seen {
		byID[m.ID] = m
	}
	mu.Unlock()
	if _, ok := byID[other.ID]; ok {
		t.Error("tap on one topic saw an event of another topic")
	}
	for _, m := range msgs {
		got := byID[m.ID]
		switch {
		case got == nil:
			t.Errorf("tap missed event %s", m.ID)
		case got.Type != m.Type || got.CorrelationID != m.CorrelationID || got.CausationID != m.CausationID || string(got.Data) != string(m.Data):
			t.Errorf("tapped event %+v, published %+v", got, m)
		}
	}
	got := newCollector()
	consume(t, tr, sub, got.handler())
	got.waitUnique(t, len(msgs), "events the subscription must still get with a tap open")

	if err := tp.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-tp.Done():
	case <-time.After(waitTimeout):
		t.Fatal("Done not closed after Close")
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
