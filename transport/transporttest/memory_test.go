package transporttest

// This file holds a deliberately simple in-memory transport whose only job is
// to test the suite itself: that every subtest can pass, that none waits
// forever, and that the suite runs fast. It is not a product transport: it
// keeps nothing on disk and polls where a broker would push.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

func TestConformanceInMemory(t *testing.T) {
	b := &memBroker{spaces: make(map[string]*memSpace)}
	Run(t, Harness{
		Open: func(t testing.TB, ns string) transport.Transport {
			tr := &memTransport{b: b, ns: ns}
			t.Cleanup(func() { tr.Close(context.Background()) })
			return tr
		},
		PublishRaw: func(t testing.TB, ns, topic string, headers map[string]string, body []byte) {
			b.route(ns, topic, maps.Clone(headers), body)
		},
		Kill: func(t testing.TB, tr transport.Transport) { tr.(*memTransport).kill() },
		BreakDeadLetters: func(t testing.TB, ns string, ref transport.SubscriptionRef) func() {
			set := func(broken bool) {
				b.mu.Lock()
				defer b.mu.Unlock()
				b.space(ns).subs[ref].deadBroken = broken
			}
			set(true)
			return func() { set(false) }
		},
		// The fake proves the suite can fail; ordering, history, lag and
		// the journal are tested on real brokers.
		Features: Features{},
	})
}

const memMaxPublish = 1 << 20

type memBroker struct {
	mu     sync.Mutex
	spaces map[string]*memSpace
}

type memSpace struct {
	subs map[transport.SubscriptionRef]*memSub
}

type memSub struct {
	cfg        transport.Subscription
	entries    []*memEntry
	dead       []transport.DeadLetter
	deadBroken bool // the dead-letter store refuses writes
}

type memEntry struct {
	headers             map[string]string
	body                []byte
	deliveries, replays int
	first               time.Time
	availableAt         time.Time
	owner               *memConsumer
	leaseUntil          time.Time
}

func (b *memBroker) space(ns string) *memSpace {
	s := b.spaces[ns]
	if s == nil {
		s = &memSpace{subs: make(map[transport.SubscriptionRef]*memSub)}
		b.spaces[ns] = s
	}
	return s
}

func (b *memBroker) declare(ns string, sub transport.Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sp := b.space(ns)
	if s := sp.subs[sub.SubscriptionRef]; s != nil {
		s.cfg = sub.WithDefaults()
		return
	}
	sp.subs[sub.SubscriptionRef] = &memSub{cfg: sub.WithDefaults()}
}

func (b *memBroker) route(ns, topic string, headers map[string]string, body []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.space(ns).subs {
		if s.cfg.Topic == topic {
			s.entries = append(s.entries, &memEntry{headers: headers, body: body})
		}
	}
}

func (b *memBroker) sub(ns string, ref transport.SubscriptionRef) *memSub {
	return b.space(ns).subs[ref]
}

type memTransport struct {
	b  *memBroker
	ns string

	mu        sync.Mutex
	closed    bool
	killed    bool
	consumers []*memConsumer
}

func (tr *memTransport) check() error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.closed || tr.killed {
		return transport.ErrClosed
	}
	return nil
}

func (tr *memTransport) dead() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.killed
}

func (tr *memTransport) Declare(ctx context.Context, subs ...transport.Subscription) error {
	if err := tr.check(); err != nil {
		return err
	}
	for _, s := range subs {
		if err := s.Validate(); err != nil {
			return err
		}
		tr.b.declare(tr.ns, s)
	}
	return nil
}

func (tr *memTransport) Publish(ctx context.Context, msgs ...*transport.Message) error {
	if err := tr.check(); err != nil {
		return err
	}
	for _, m := range msgs {
		if err := m.Validate(); err != nil {
			return err
		}
		if len(m.Data) > memMaxPublish {
			return fmt.Errorf("%w: %d bytes", transport.ErrTooLarge, len(m.Data))
		}
	}
	for _, m := range msgs {
		topic, _, _ := m.Topic()
		h := make(map[string]string)
		transport.EncodeHeaders(m, func(k, v string) { h[k] = v })
		tr.b.route(tr.ns, topic, h, slices.Clone(m.Data))
	}
	return nil
}

func (tr *memTransport) Consume(ctx context.Context, sub transport.Subscription, h transport.Handler) (transport.Consumer, error) {
	if err := tr.Declare(ctx, sub); err != nil {
		return nil, err
	}
	c := &memConsumer{
		tr: tr, ref: sub.SubscriptionRef,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	c.hctx, c.cancel = context.WithCancel(context.Background())
	c.pipe = transport.NewPipeline(sub, h, transport.Settler[*memEntry](c), transport.PipelineConfig{Context: c.hctx, Stopping: c.stop})
	tr.mu.Lock()
	tr.consumers = append(tr.consumers, c)
	tr.mu.Unlock()
	go c.loop()
	return c, nil
}

func (tr *memTransport) DeadLetters(ctx context.Context, ref transport.SubscriptionRef, limit int) ([]transport.DeadLetter, error) {
	if err := tr.check(); err != nil {
		return nil, err
	}
	tr.b.mu.Lock()
	defer tr.b.mu.Unlock()
	s := tr.b.sub(tr.ns, ref)
	if s == nil {
		return nil, nil
	}
	out := slices.Clone(s.dead)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// takeDead removes dead letter id of ref and returns it.
func (tr *memTransport) takeDead(ref transport.SubscriptionRef, id string) (*memSub, transport.DeadLetter, error) {
	s := tr.b.sub(tr.ns, ref)
	if s != nil {
		for i, dl := range s.dead {
			if dl.ID == id {
				s.dead = slices.Delete(s.dead, i, i+1)
				return s, dl, nil
			}
		}
	}
	return nil, transport.DeadLetter{}, fmt.Errorf("dead letter %s of %s: %w", id, ref, transport.ErrNotFound)
}

func (tr *memTransport) Replay(ctx context.Context, ref transport.SubscriptionRef, id string) error {
	if err := tr.check(); err != nil {
		return err
	}
	tr.b.mu.Lock()
	defer tr.b.mu.Unlock()
	s, dl, err := tr.takeDead(ref, id)
	if err != nil {
		return err
	}
	h := make(map[string]string)
	transport.EncodeHeaders(&dl.Message, func(k, v string) { h[k] = v })
	s.entries = append(s.entries, &memEntry{headers: h, body: dl.Message.Data, replays: dl.Replays + 1})
	return nil
}

func (tr *memTransport) Discard(ctx context.Context, ref transport.SubscriptionRef, id string) error {
	if err := tr.check(); err != nil {
		return err
	}
	tr.b.mu.Lock()
	defer tr.b.mu.Unlock()
	_, _, err := tr.takeDead(ref, id)
	return err
}

func (tr *memTransport) Close(ctx context.Context) error {
	tr.mu.Lock()
	tr.closed = true
	cs := slices.Clone(tr.consumers)
	tr.mu.Unlock()
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Stop(ctx))
	}
	return errors.Join(errs...)
}

func (tr *memTransport) kill() {
	tr.mu.Lock()
	tr.killed = true
	cs := slices.Clone(tr.consumers)
	tr.mu.Unlock()
	for _, c := range cs {
		c.stopOnce.Do(func() { close(c.stop) })
	}
}

type memConsumer struct {
	tr     *memTransport
	ref    transport.SubscriptionRef
	pipe   *transport.Pipeline[*memEntry]
	hctx   context.Context
	cancel context.CancelFunc

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	running  sync.WaitGroup
}

func (c *memConsumer) Done() <-chan struct{} { return c.done }

func (c *memConsumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stop) })
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.cancel()
		<-c.done
		return ctx.Err()
	}
}

func (c *memConsumer) loop() {
	defer close(c.done)
	defer c.running.Wait()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var busy int
	var mu sync.Mutex
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		for {
			c.tr.b.mu.Lock()
			s := c.tr.b.sub(c.tr.ns, c.ref)
			mu.Lock()
			free := s.cfg.Concurrency - busy
			mu.Unlock()
			var e *memEntry
			cfg := s.cfg
			if free > 0 {
				e = c.claim(s)
			}
			c.tr.b.mu.Unlock()
			if e == nil {
				break
			}
			mu.Lock()
			busy++
			mu.Unlock()
			c.running.Add(1)
			go func() {
				defer c.running.Done()
				c.handle(cfg, e)
				mu.Lock()
				busy--
				mu.Unlock()
			}()
		}
	}
}

// claim leases the first available entry of s. b.mu is held.
func (c *memConsumer) claim(s *memSub) *memEntry {
	now := time.Now()
	for _, e := range s.entries {
		if now.Before(e.availableAt) || (e.owner != nil && now.Before(e.leaseUntil)) {
			continue
		}
		e.owner, e.leaseUntil = c, now.Add(s.cfg.Lease)
		e.deliveries++
		if e.first.IsZero() {
			e.first = now
		}
		return e
	}
	return nil
}

// handle renews e's lease while the pipeline takes it through.
func (c *memConsumer) handle(cfg transport.Subscription, e *memEntry) {
	renewDone := make(chan struct{})
	go func() {
		t := time.NewTicker(cfg.Lease / 4)
		defer t.Stop()
		for {
			select {
			case <-renewDone:
				return
			case <-t.C:
				if c.tr.dead() {
					return
				}
				c.tr.b.mu.Lock()
				if e.owner == c {
					e.leaseUntil = time.Now().Add(cfg.Lease)
				}
				c.tr.b.mu.Unlock()
			}
		}
	}()
	defer close(renewDone)
	m, err := transport.DecodeHeaders(func(yield func(k, v string) bool) {
		for k, v := range e.headers {
			if !yield(k, v) {
				return
			}
		}
	}, e.body)
	d := &transport.Delivery{Message: m, Subscription: c.ref, Attempt: e.deliveries, Replays: e.replays}
	c.pipe.Deliver(e, d, err, e.first)
}

// The consumer settles through the locked broker, as a driver would
// through its connection.

func (c *memConsumer) Held(e *memEntry) bool {
	c.tr.b.mu.Lock()
	defer c.tr.b.mu.Unlock()
	return !c.tr.dead() && e.owner == c
}

func (c *memConsumer) remove(e *memEntry) error {
	c.tr.b.mu.Lock()
	defer c.tr.b.mu.Unlock()
	s := c.tr.b.sub(c.tr.ns, c.ref)
	s.entries = slices.DeleteFunc(s.entries, func(x *memEntry) bool { return x == e })
	return nil
}

func (c *memConsumer) Ack(e *memEntry) error       { return c.remove(e) }
func (c *memConsumer) Terminate(e *memEntry) error { return c.remove(e) }

func (c *memConsumer) Retry(e *memEntry, _ int, delay time.Duration, _ time.Time) error {
	c.tr.b.mu.Lock()
	defer c.tr.b.mu.Unlock()
	e.owner, e.availableAt = nil, time.Now().Add(delay)
	return nil
}

func (c *memConsumer) StoreDeadLetter(e *memEntry, dl *transport.DeadLetter) error {
	c.tr.b.mu.Lock()
	defer c.tr.b.mu.Unlock()
	stored := *dl
	stored.ID = randomHex(8)
	if dl.Reason == transport.ReasonMalformed {
		stored.Headers = make(map[string][]string)
		for k, v := range e.headers {
			stored.Headers[k] = []string{v}
		}
	}
	s := c.tr.b.sub(c.tr.ns, c.ref)
	if s.deadBroken {
		return errors.New("memory: the dead-letter store refuses writes")
	}
	s.dead = append(s.dead, stored)
	return nil
}
