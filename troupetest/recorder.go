package troupetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// Recorder is an in-memory transport that keeps what is published instead
// of sending it anywhere. Pass it as [troupe.Config].Transport to run an app
// without a broker, then drive its handlers with [Deliver] and read what
// they published from the [Result], or read everything the app published
// (also from HTTP routes and app.Context) with [Recorder.Published].
//
// A Recorder delivers nothing by itself: events published to it never reach
// a subscription, and nothing is retried or dead-lettered. Its DeadLetters
// returns none, and Replay and Discard fail with an error wrapping
// transport.ErrNotFound. Publish checks messages as a broker would: a
// message missing a CloudEvents attribute fails with troupe.ErrMalformed,
// one over 1 MiB of data with troupe.ErrTooLarge, and then nothing is
// recorded. After Close every method fails with transport.ErrClosed.
//
// The zero value is not ready; use [NewRecorder]. A Recorder is safe for
// concurrent use.
type Recorder struct {
	mu        sync.Mutex
	closed    bool
	published []Message
	declared  map[string]transport.Subscription
	consumers map[string]*recorderConsumer // "service.name" → consumer
}

var _ transport.Transport = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{
		declared:  make(map[string]transport.Subscription),
		consumers: make(map[string]*recorderConsumer),
	}
}

// Message is one event as it was published: its envelope (every attribute;
// the delivery fields Attempt, Replays and Subscription are zero) and its
// JSON data.
type Message struct {
	troupe.Envelope
	// Data is the event's data as it went on the wire.
	Data json.RawMessage
}

// Decode decodes the message's data into v, a pointer.
func (m Message) Decode(v any) error { return json.Unmarshal(m.Data, v) }

// Events returns the messages of topic among msgs, in order, decoded into
// events; messages of other topics are skipped. Data that does not decode
// into T fails the test.
func Events[T any](t testing.TB, msgs []Message, topic *troupe.Topic[T]) []troupe.Event[T] {
	t.Helper()
	var out []troupe.Event[T]
	for _, m := range msgs {
		if m.Type != topic.Type() {
			continue
		}
		var v T
		if err := m.Decode(&v); err != nil {
			t.Fatalf("troupetest: event %s of %s does not decode into %T: %v", m.ID, m.Type, v, err)
		}
		out = append(out, troupe.Event[T]{Data: v, Envelope: m.Envelope})
	}
	return out
}

// Published returns every message published through r so far, in order.
func (r *Recorder) Published() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.published...)
}

// Reset forgets the messages published so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published = nil
}

// captureKey marks the context of one [Deliver] call, so that what its
// handler publishes lands in that call's result.
type captureKey struct{}

type capture struct {
	mu   sync.Mutex
	msgs []Message
}

func (c *capture) add(ms []Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, ms...)
}

func (c *capture) list() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// Declare records the subscriptions; it fails for an invalid one.
func (r *Recorder) Declare(ctx context.Context, subs ...transport.Subscription) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return transport.ErrClosed
	}
	for _, s := range subs {
		if err := s.Validate(); err != nil {
			return err
		}
	}
	for _, s := range subs {
		r.declared[s.String()] = s.WithDefaults()
	}
	return nil
}

// Publish checks every message, then records all of them.
func (r *Recorder) Publish(ctx context.Context, msgs ...*transport.Message) error {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("troupetest: publish: %w", err)
		}
		if len(m.Data) > transport.DefaultMaxMessageBytes {
			return fmt.Errorf("troupetest: publish %s: %w: %d bytes, the limit is %d", m.Type, transport.ErrTooLarge, len(m.Data), transport.DefaultMaxMessageBytes)
		}
		out[i] = Message{Envelope: troupe.EnvelopeOf(m), Data: append(json.RawMessage(nil), m.Data...)}
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return transport.ErrClosed
	}
	r.published = append(r.published, out...)
	r.mu.Unlock()
	if c, ok := ctx.Value(captureKey{}).(*capture); ok {
		c.add(out)
	}
	return nil
}

// Consume keeps h so that [Deliver] can call it; nothing is delivered
// otherwise.
func (r *Recorder) Consume(ctx context.Context, sub transport.Subscription, h transport.Handler) (transport.Consumer, error) {
	if err := r.Declare(ctx, sub); err != nil {
		return nil, err
	}
	c := &recorderConsumer{r: r, ref: sub.String(), sub: sub.WithDefaults(), h: h, done: make(chan struct{})}
	r.mu.Lock()
	r.consumers[c.ref] = c
	r.mu.Unlock()
	return c, nil
}

// consumer returns the running consumer of the subscription named
// "service.name", or nil.
func (r *Recorder) consumer(ref string) *recorderConsumer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.consumers[ref]
}

// DeadLetters returns none: a Recorder never dead-letters.
func (r *Recorder) DeadLetters(ctx context.Context, sub transport.SubscriptionRef, limit int) ([]transport.DeadLetter, error) {
	if r.isClosed() {
		return nil, transport.ErrClosed
	}
	return nil, nil
}

// Replay fails with transport.ErrNotFound: a Recorder holds no dead letters.
func (r *Recorder) Replay(ctx context.Context, sub transport.SubscriptionRef, id string) error {
	if r.isClosed() {
		return transport.ErrClosed
	}
	return fmt.Errorf("troupetest: dead letter %s of %s: %w (a Recorder keeps no dead letters)", id, sub, transport.ErrNotFound)
}

// Discard fails with transport.ErrNotFound: a Recorder holds no dead letters.
func (r *Recorder) Discard(ctx context.Context, sub transport.SubscriptionRef, id string) error {
	return r.Replay(ctx, sub, id)
}

// Close stops every consumer; later calls of other methods fail with
// transport.ErrClosed. The recorded messages stay readable.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	cs := r.consumers
	r.consumers = make(map[string]*recorderConsumer)
	r.closed = true
	r.mu.Unlock()
	for _, c := range cs {
		_ = c.Stop(ctx)
	}
	return nil
}

func (r *Recorder) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

type recorderConsumer struct {
	r    *Recorder
	ref  string
	sub  transport.Subscription
	h    transport.Handler
	once sync.Once
	done chan struct{}
}

func (c *recorderConsumer) Stop(context.Context) error {
	c.once.Do(func() {
		c.r.mu.Lock()
		if c.r.consumers[c.ref] == c {
			delete(c.r.consumers, c.ref)
		}
		c.r.mu.Unlock()
		close(c.done)
	})
	return nil
}

func (c *recorderConsumer) Done() <-chan struct{} { return c.done }

// settler settles one delivery of [Deliver]: there is no broker, and what
// became of the delivery is the outcome the pipeline returns. A Recorder
// keeps no dead letters.
type settler struct{}

func (settler) Held(struct{}) bool                                    { return true }
func (settler) Ack(struct{}) error                                    { return nil }
func (settler) Retry(struct{}, int, time.Duration, time.Time) error   { return nil }
func (settler) StoreDeadLetter(struct{}, *transport.DeadLetter) error { return nil }
func (settler) Terminate(struct{}) error                              { return nil }
