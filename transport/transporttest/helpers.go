package transporttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// Timing of the suite. Leases and backoffs are short so that retries and
// redeliveries happen within a second or two; waitTimeout bounds every wait
// generously because the suite may run on a slow, busy machine.
const (
	// lease is the Lease of most subscriptions in the suite.
	lease = time.Second
	// quietPeriod is how long the suite watches to show that something does
	// not happen. A broker redelivers an unsettled message after one lease,
	// so three leases leave room for a slow machine.
	quietPeriod = 3 * lease
	// waitTimeout bounds every wait for something that must happen.
	waitTimeout = 30 * time.Second
	// pollInterval is how often waits check their condition.
	pollInterval = 10 * time.Millisecond
	// topic is the topic most subtests publish to.
	topic = "orders"
)

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails: since Go 1.24 it crashes the program instead
	return hex.EncodeToString(b)
}

// newNamespace returns a namespace no other subtest uses. It starts with a
// letter, so it is a valid name for every broker.
func newNamespace() string { return "tt" + randomHex(6) }

// newMessage returns a valid message on topic with unique id and data
// {"n":n}.
func newMessage(topic string, n int) *transport.Message {
	return &transport.Message{
		ID:     randomHex(16),
		Type:   transport.WireType(topic, 1),
		Source: "transporttest",
		Time:   time.Now(),
		Data:   fmt.Appendf(nil, `{"n":%d}`, n),
	}
}

// newMessages returns n valid messages on topic.
func newMessages(topic string, n int) []*transport.Message {
	msgs := make([]*transport.Message, n)
	for i := range msgs {
		msgs[i] = newMessage(topic, i)
	}
	return msgs
}

// ids returns the ids of msgs.
func ids(msgs []*transport.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// newSub returns a subscription tuned for the suite: a short lease, tiny
// exact backoffs and five attempts.
func newSub(topic, service, name string) transport.Subscription {
	return transport.Subscription{
		SubscriptionRef: transport.SubscriptionRef{Service: service, Name: name},
		Topic:           topic,
		Lease:           lease,
		Retry: transport.RetryPolicy{
			MaxAttempts: 5,
			MinBackoff:  20 * time.Millisecond,
			MaxBackoff:  100 * time.Millisecond,
			Jitter:      transport.NoJitter,
		},
	}
}

// callCtx returns a context for one call to the transport, bounded by
// waitTimeout and by the test.
func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func declare(t testing.TB, tr transport.Transport, subs ...transport.Subscription) {
	t.Helper()
	if err := tr.Declare(callCtx(t), subs...); err != nil {
		t.Fatalf("Declare: %v", err)
	}
}

func publish(t testing.TB, tr transport.Transport, msgs ...*transport.Message) {
	t.Helper()
	if err := tr.Publish(callCtx(t), msgs...); err != nil {
		t.Fatalf("Publish of %d messages: %v", len(msgs), err)
	}
}

// consume starts a consumer that lives until the test ends (or the test
// stops it). Its context is the test's, whether or not the transport ties
// the consumer's life to it.
func consume(t testing.TB, tr transport.Transport, sub transport.Subscription, h transport.Handler) transport.Consumer {
	t.Helper()
	c, err := tr.Consume(t.Context(), sub, h)
	if err != nil {
		t.Fatalf("Consume %s: %v", sub.SubscriptionRef, err)
	}
	return c
}

func deadLetters(t testing.TB, tr transport.Transport, ref transport.SubscriptionRef) []transport.DeadLetter {
	t.Helper()
	dls, err := tr.DeadLetters(callCtx(t), ref, 0)
	if err != nil {
		t.Fatalf("DeadLetters %s: %v", ref, err)
	}
	return dls
}

// waitFor polls cond every pollInterval until it holds, and fails the test
// if it does not within timeout. msg says what was missing; it is called only
// on failure, so it reports the state at the deadline.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	poll(t, timeout, pollInterval, cond, msg)
}

// waitForEvery is waitFor with waitTimeout and a chosen polling interval, for
// conditions that ask the broker.
func waitForEvery(t testing.TB, every time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	poll(t, waitTimeout, every, cond, msg)
}

func poll(t testing.TB, timeout, every time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg())
		}
		select {
		case <-time.After(every):
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting: %s", msg())
		}
	}
}

// listDeadLetters asks for ref's dead letters once, with its own bounded
// context, for polling loops.
func listDeadLetters(t testing.TB, tr transport.Transport, ref transport.SubscriptionRef) ([]transport.DeadLetter, error) {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	return tr.DeadLetters(ctx, ref, 0)
}

// waitDeadLetters waits until ref's dead-letter store holds at least n
// letters and returns them. It asks the broker every 50ms, less often than
// waitFor polls memory.
func waitDeadLetters(t testing.TB, tr transport.Transport, ref transport.SubscriptionRef, n int) []transport.DeadLetter {
	t.Helper()
	var (
		dls []transport.DeadLetter
		err error
	)
	waitForEvery(t, 50*time.Millisecond, func() bool {
		dls, err = listDeadLetters(t, tr, ref)
		return err == nil && len(dls) >= n
	}, func() string {
		return fmt.Sprintf("%s holds %d dead letters, want %d (last error: %v)", ref, len(dls), n, err)
	})
	return dls
}

// waitNoDeadLetters waits until ref's dead-letter store is empty.
func waitNoDeadLetters(t testing.TB, tr transport.Transport, ref transport.SubscriptionRef) {
	t.Helper()
	var (
		dls []transport.DeadLetter
		err error
	)
	waitForEvery(t, 50*time.Millisecond, func() bool {
		dls, err = listDeadLetters(t, tr, ref)
		return err == nil && len(dls) == 0
	}, func() string {
		return fmt.Sprintf("%s still holds %d dead letters, want none (last error: %v)", ref, len(dls), err)
	})
}

// quiet waits for d to give a broker the chance to do what it must not do:
// redeliver, fan out again, deliver a rejected message. It is the only place
// the suite sleeps without waiting for a signal.
func quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-t.Context().Done():
	}
}

// record is one delivery as a handler saw it.
type record struct {
	transport.Delivery
	// At is when the handler was called.
	At time.Time
}

// collector records deliveries from any number of handlers.
type collector struct {
	mu    sync.Mutex
	recs  []record
	count map[string]int // deliveries per message id
}

func newCollector() *collector { return &collector{count: make(map[string]int)} }

// add records d, copying what a transport might reuse, and returns how often
// d's message was delivered so far, d included.
func (c *collector) add(d *transport.Delivery) int {
	r := record{Delivery: *d, At: time.Now()}
	r.Data = bytes.Clone(d.Data)
	r.Extensions = maps.Clone(d.Extensions)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r)
	c.count[d.ID]++
	return c.count[d.ID]
}

// handler returns a handler that records every delivery and acks it.
func (c *collector) handler() transport.Handler {
	return func(_ context.Context, d *transport.Delivery) error {
		c.add(d)
		return nil
	}
}

// total returns the number of deliveries.
func (c *collector) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// unique returns the number of distinct messages delivered.
func (c *collector) unique() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.count)
}

// times returns how often message id was delivered.
func (c *collector) times(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[id]
}

// of returns the deliveries of message id, in the order they were handled.
func (c *collector) of(id string) []record {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []record
	for _, r := range c.recs {
		if r.ID == id {
			out = append(out, r)
		}
	}
	return out
}

// counts returns a copy of the deliveries per message id.
func (c *collector) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.count)
}

// waitUnique waits until n distinct messages were delivered.
func (c *collector) waitUnique(t testing.TB, n int, what string) {
	t.Helper()
	waitFor(t, waitTimeout, func() bool { return c.unique() >= n }, func() string {
		return fmt.Sprintf("%s: %d distinct messages delivered, want %d", what, c.unique(), n)
	})
}

// missing returns the ids in want that were never delivered, sorted, at most
// ten of them, for failure messages.
func (c *collector) missing(want []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range want {
		if c.count[id] == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out[:min(len(out), 10)]
}

// duplicates returns how many deliveries were of a message delivered before.
func duplicates(counts map[string]int) int {
	n := 0
	for _, k := range counts {
		n += k - 1
	}
	return n
}

// header looks name up in headers ignoring case, as CloudEvents header names
// are case-insensitive in most protocols.
func header(headers map[string][]string, name string) (string, bool) {
	for k, v := range headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// encodeHeaders returns m's CloudEvents headers as a map, for PublishRaw.
func encodeHeaders(m *transport.Message) map[string]string {
	h := make(map[string]string)
	transport.EncodeHeaders(m, func(k, v string) { h[k] = v })
	return h
}
