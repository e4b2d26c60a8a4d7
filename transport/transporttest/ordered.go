package transporttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// testOrdered: an ordered subscription handles the events of each key in
// publish order, one at a time, retrying a failed one in place before the
// next of its key; different keys run in parallel; two consumers (as two
// processes) never both handle events, and when the active one stops the
// other takes over, still in order.
func testOrdered(t *testing.T, h Harness) {
	if !h.Features.Ordered {
		t.Skip("the harness does not claim Features.Ordered")
	}
	const keys, per = 4, 20
	ns := newNamespace()
	trA, trB := h.Open(t, ns), h.Open(t, ns)
	sub := newSub(topic, "kitchen", "cook")
	sub.Ordered, sub.Concurrency = true, keys
	sub.Retry.MinBackoff, sub.Retry.MaxBackoff = 10*time.Millisecond, 10*time.Millisecond
	declare(t, trA, sub)

	type call struct {
		consumer string
		n        int
		attempt  int
	}
	var (
		mu      sync.Mutex
		calls   = map[string][]call{} // by key, in call order
		running = map[string]string{} // key → consumer running one of its events
		victim  string                // the consumer killed in the last phase
		overlap []string
		active  atomic.Int32
		maxAct  atomic.Int32
	)
	handler := func(name string) transport.Handler {
		return func(ctx context.Context, d *transport.Delivery) error {
			key := d.Extensions[transport.PartitionKey]
			var body struct{ N int }
			_ = json.Unmarshal(d.Data, &body)
			mu.Lock()
			if r := running[key]; r != "" && r != victim {
				overlap = append(overlap, fmt.Sprintf("%s #%d in %s and %s", key, body.N, r, name))
			}
			running[key] = name
			calls[key] = append(calls[key], call{name, body.N, d.Attempt})
			mu.Unlock()
			if body.N >= 2*per+per/2 && name != "C" {
				// The active consumer is about to die: it holds these
				// events, unsettled, until the end of the test.
				select {
				case <-t.Context().Done():
				case <-ctx.Done():
				}
				return errors.New("the consumer died")
			}
			a := active.Add(1)
			for m := maxAct.Load(); a > m && !maxAct.CompareAndSwap(m, a); m = maxAct.Load() {
			}
			time.Sleep(2 * time.Millisecond) // long enough for keys to overlap
			active.Add(-1)
			mu.Lock()
			running[key] = ""
			mu.Unlock()
			if body.N%7 == 3 && d.Attempt == 1 {
				return errors.New("first attempt fails")
			}
			return nil
		}
	}
	batch := func(from int) {
		var msgs []*transport.Message
		for n := from; n < from+per; n++ {
			for k := range keys {
				m := newMessage(topic, n)
				m.Extensions = map[string]string{transport.PartitionKey: fmt.Sprint("key", k)}
				msgs = append(msgs, m)
			}
		}
		publish(t, trA, msgs...)
	}
	// handled counts, per key, the events handled successfully.
	handled := func() int {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, cs := range calls {
			for _, c := range cs {
				if c.n%7 != 3 || c.attempt > 1 {
					total++
				}
			}
		}
		return total
	}
	consumers := map[string]transport.Consumer{"A": consume(t, trA, sub, handler("A")), "B": consume(t, trB, sub, handler("B"))}
	batch(0)
	waitFor(t, waitTimeout, func() bool { return handled() >= keys*per }, func() string {
		return fmt.Sprintf("handled %d of %d events", handled(), keys*per)
	})
	mu.Lock()
	first := calls["key0"][0].consumer
	mu.Unlock()
	// Stop the active consumer; the other must carry on.
	if err := consumers[first].Stop(callCtx(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	batch(per)
	waitFor(t, waitTimeout, func() bool { return handled() >= 2*keys*per }, func() string {
		return fmt.Sprintf("after the active consumer stopped, handled %d of %d events", handled(), 2*keys*per)
	})
	// A third consumer stands by; the active one dies (kill -9) in the
	// middle of the next batch. The standby takes over in order; events the
	// dead one handled without settling may run again.
	trC := h.Open(t, ns)
	consume(t, trC, sub, handler("C"))
	killAt := 2*keys*per + keys*(per/2) // the rest waits in the doomed consumer
	batch(2 * per)
	waitFor(t, waitTimeout, func() bool { return handled() >= killAt }, func() string {
		return fmt.Sprintf("before the kill, handled %d of %d events", handled(), killAt)
	})
	mu.Lock()
	victim = other(first)
	mu.Unlock()
	h.Kill(t, map[string]transport.Transport{"A": trA, "B": trB}[victim])
	waitUnique := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, cs := range calls {
			top := -1
			for _, c := range cs {
				if (c.n%7 != 3 || c.attempt > 1) && c.n > top {
					top = c.n
				}
			}
			n += top + 1
		}
		return n
	}
	waitFor(t, waitTimeout, func() bool { return waitUnique() >= 3*keys*per }, func() string {
		return fmt.Sprintf("after the active consumer died, handled up to %d of %d events", waitUnique(), 3*keys*per)
	})

	mu.Lock()
	defer mu.Unlock()
	if len(overlap) > 0 {
		t.Errorf("events of one key ran at the same time: %v", overlap)
	}
	if m := maxAct.Load(); m < 2 {
		t.Errorf("at most %d handlers ran at once: different keys must run in parallel", m)
	}
	for k := range keys {
		key := fmt.Sprint("key", k)
		next := 0
		for i, c := range calls[key] {
			switch {
			case c.n == next && c.n%7 == 3 && c.attempt == 1:
				// fails; the retry must come next
			case c.n == next:
				next++
			case c.n < next && c.n >= 2*per:
				// after the kill: the dead consumer's unsettled events come
				// again, in order, before the next ones
				next = c.n + 1
			default:
				t.Fatalf("%s: call %d handled #%d (attempt %d) by %s, want #%d next: %v", key, i, c.n, c.attempt, c.consumer, next, calls[key])
			}
			if c.n < 2*per {
				phase := c.n / per
				if want := map[int]string{0: first, 1: other(first)}[phase]; c.consumer != want {
					t.Errorf("%s: #%d handled by %s, want %s: only one consumer may be active", key, c.n, c.consumer, want)
				}
			}
		}
		if next != 3*per {
			t.Errorf("%s: handled up to #%d, want %d: %v", key, next, 3*per, calls[key][len(calls[key])-25:])
		}
	}
}

func other(name string) string {
	if name == "A" {
		return "B"
	}
	return "A"
}
