package natsjs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// Headers troupe adds to dead letters and replays, beside the event's own.
const (
	hdrReplays      = "troupe-replays"
	hdrDLReason     = "troupe-dl-reason"
	hdrDLError      = "troupe-dl-error"
	hdrDLAttempts   = "troupe-dl-attempts"
	hdrDLFirst      = "troupe-dl-first-attempt"
	hdrDLLast       = "troupe-dl-last-attempt"
	hdrDLDeadAt     = "troupe-dl-dead-at"
	hdrDLSubject    = "troupe-dl-subject"
	dlHeaderPrefix  = "troupe-dl-"
	maxErrorTextLen = 4096
)

// consumer runs the handlers of one subscription in this process.
//
// Messages are pulled with explicit fetches sized to the room left, so the
// consumer never holds more than Concurrency+Prefetch messages, and every
// message it holds, waiting or being handled, has its lease renewed: a slow
// handler never lets the messages queued behind it expire and go to another
// consumer while this one still means to handle them.
type consumer struct {
	t    *Transport
	sub  transport.Subscription
	h    transport.Handler
	work chan jetstream.Msg

	ctx    context.Context // handlers' base context, cancelled on a hard stop
	cancel context.CancelFunc

	pullCtx    context.Context // ends the fetches when stopping
	pullCancel context.CancelFunc

	mu       sync.Mutex
	room     *sync.Cond
	stopping bool
	held     map[jetstream.Msg]*puller // arrived, not yet settled

	pullers sync.WaitGroup
	workers sync.WaitGroup
	done    chan struct{}
	stopErr error
	once    sync.Once
}

// puller fetches from one JetStream consumer (the subscription's events, or
// its replays) within its own budget, so a long fetch on one never starves
// the other.
type puller struct {
	jc       jetstream.Consumer
	limit    int // most messages held at once from this consumer
	reserved int // asked for in the open fetch, not yet arrived
	held     int // arrived, not yet settled
}

// free is the room left in p's budget; c.mu must be held.
func (p *puller) free() int { return p.limit - p.reserved - p.held }

// replayLimit bounds the replay consumer's budget; replays are rare.
const replayLimit = 16

// Consume implements [transport.Transport].
func (t *Transport) Consume(ctx context.Context, sub transport.Subscription, h transport.Handler) (transport.Consumer, error) {
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	sub = sub.WithDefaults()
	main, replay, err := t.declare(ctx, sub)
	if err != nil {
		return nil, err
	}
	c := &consumer{
		t: t, sub: sub, h: h,
		held: make(map[jetstream.Msg]*puller),
		done: make(chan struct{}),
	}
	pullers := []*puller{
		{jc: main, limit: sub.Concurrency + sub.Prefetch},
		{jc: replay, limit: replayLimit},
	}
	c.room = sync.NewCond(&c.mu)
	c.work = make(chan jetstream.Msg, pullers[0].limit+pullers[1].limit)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.pullCtx, c.pullCancel = context.WithCancel(context.Background())
	for range sub.Concurrency {
		c.workers.Add(1)
		go c.worker()
	}
	for _, p := range pullers {
		c.pullers.Add(1)
		go c.pull(p)
	}
	go func() {
		c.pullers.Wait()
		close(c.work)
	}()
	go c.renew()
	t.mu.Lock()
	t.consumers[c] = struct{}{}
	t.mu.Unlock()
	return c, nil
}

// reserve waits until at least half of p's budget is free, so fetches are
// worth their round trip, then reserves all of the free room and returns its
// size; 0 once stopping.
func (c *consumer) reserve(p *puller) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.stopping && p.free() < (p.limit+1)/2 {
		c.room.Wait()
	}
	if c.stopping {
		return 0
	}
	n := p.free()
	p.reserved += n
	return n
}

// pull fetches messages from one JetStream consumer into the work queue.
func (c *consumer) pull(p *puller) {
	defer c.pullers.Done()
	jc := p.jc
	failures := 0
	for {
		n := c.reserve(p)
		if n == 0 {
			return
		}
		// No expiry of our own: the fetch waits up to its default (30s, with
		// heartbeats) for messages, and the context ends it on stop.
		batch, err := jc.Fetch(n, jetstream.FetchContext(c.pullCtx))
		got := 0
		if err == nil {
			for m := range batch.Messages() {
				got++
				c.mu.Lock()
				p.reserved--
				p.held++
				c.held[m] = p
				c.mu.Unlock()
				c.work <- m // never blocks: the queue holds every puller's limit
			}
			err = batch.Error()
		}
		c.mu.Lock()
		p.reserved -= n - got
		c.room.Broadcast()
		stopping := c.stopping
		c.mu.Unlock()
		switch {
		case stopping || c.t.nc.IsClosed():
			return
		case err == nil || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout):
			failures = 0
		default:
			// The connection is down or the consumer is gone: back off so a
			// long outage does not spin.
			failures++
			c.t.log.Debug("troupe: fetch failed", "subscription", c.sub.String(), "err", err)
			select {
			case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 2*time.Second)):
			case <-c.pullCtx.Done():
				return
			}
		}
	}
}

// release forgets a settled message and wakes a puller if room opened.
func (c *consumer) release(m jetstream.Msg) {
	c.mu.Lock()
	if p := c.held[m]; p != nil {
		delete(c.held, m)
		p.held--
		if p.free() == (p.limit+1)/2 {
			c.room.Broadcast() // just crossed the threshold of reserve
		}
	}
	c.mu.Unlock()
}

// renew extends the lease of every held message a few times per lease, until
// the consumer has stopped.
func (c *consumer) renew() {
	tick := time.NewTicker(c.sub.Lease / 3)
	defer tick.Stop()
	var batch []jetstream.Msg
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		batch = batch[:0]
		c.mu.Lock()
		for m := range c.held {
			batch = append(batch, m)
		}
		c.mu.Unlock()
		for _, m := range batch {
			_ = m.InProgress()
		}
	}
}

func (c *consumer) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

func (c *consumer) worker() {
	defer c.workers.Done()
	for m := range c.work {
		if c.isStopping() {
			// Not started: hand it back now rather than after its lease.
			_ = m.Nak()
		} else {
			c.handle(m)
		}
		c.release(m)
	}
}

// handle runs one delivery and settles it with the server.
func (c *consumer) handle(m jetstream.Msg) {
	started := time.Now()
	meta, err := m.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to settle.
		c.t.log.Warn("troupe: message without JetStream metadata", "subscription", c.sub.String(), "subject", m.Subject())
		return
	}
	attempt := int(meta.NumDelivered)
	first := meta.Timestamp
	hdr := m.Headers()
	d := &transport.Delivery{Subscription: c.sub.SubscriptionRef, Attempt: attempt}
	if r := hdr.Get(hdrReplays); r != "" {
		d.Replays, _ = strconv.Atoi(r)
	}
	msg, decErr := transport.DecodeHeaders(func(yield func(k, v string) bool) {
		for k, vs := range hdr {
			if len(vs) > 0 && !yield(k, vs[0]) {
				return
			}
		}
	}, m.Data())
	d.Message = msg
	switch {
	case decErr != nil:
		c.deadLetter(m, d, transport.ReasonMalformed, decErr, first, started)
		return
	case len(m.Data()) > c.sub.MaxMessageBytes:
		c.deadLetter(m, d, transport.ReasonOversized,
			fmt.Errorf("%w: %d bytes, subscription accepts %d", transport.ErrTooLarge, len(m.Data()), c.sub.MaxMessageBytes), first, started)
		return
	case attempt > c.sub.Retry.MaxAttempts:
		c.deadLetter(m, d, transport.ReasonAbandoned,
			fmt.Errorf("delivered %d times, limit %d: a consumer stopped or died during the last attempt", attempt, c.sub.Retry.MaxAttempts), first, started)
		return
	}

	herr := c.call(d)

	out := transport.Decide(herr, attempt, c.sub.Retry, rand.Float64())
	switch out.Action {
	case transport.ActAck:
		c.settle(m, "ack", m.Ack())
	case transport.ActRetry:
		c.settle(m, "nak", m.NakWithDelay(out.Delay))
	case transport.ActDeadLetter:
		c.deadLetter(m, d, out.Reason, out.Err, first, started)
	}
}

// call runs the handler, turning a panic into an error.
func (c *consumer) call(d *transport.Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.h(c.ctx, d)
}

func (c *consumer) settle(m jetstream.Msg, what string, err error) {
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.t.log.Warn("troupe: could not settle delivery; the broker will redeliver it",
			"subscription", c.sub.String(), "action", what, "err", err)
	}
}

// deadLetter stores the message in the subscription's dead-letter stream and
// only then terminates the delivery, so a crash in between leaves it in the
// subscription (to be dead-lettered again, deduplicated by the server) rather
// than nowhere.
func (c *consumer) deadLetter(m jetstream.Msg, d *transport.Delivery, reason transport.Reason, cause error, first, last time.Time) {
	meta, _ := m.Metadata()
	errText := ""
	if cause != nil {
		errText = cause.Error()
		if len(errText) > maxErrorTextLen {
			errText = errText[:maxErrorTextLen] + "…"
		}
	}
	hdr := make(nats.Header, len(m.Headers())+10)
	for k, vs := range m.Headers() {
		if k == jetstream.MsgIDHeader || len(k) > len(dlHeaderPrefix) && k[:len(dlHeaderPrefix)] == dlHeaderPrefix {
			continue
		}
		hdr[k] = vs
	}
	now := time.Now()
	hdr.Set(hdrDLReason, string(reason))
	hdr.Set(hdrDLError, errText)
	hdr.Set(hdrDLAttempts, strconv.Itoa(d.Attempt))
	hdr.Set(hdrDLFirst, first.UTC().Format(time.RFC3339Nano))
	hdr.Set(hdrDLLast, last.UTC().Format(time.RFC3339Nano))
	hdr.Set(hdrDLDeadAt, now.UTC().Format(time.RFC3339Nano))
	hdr.Set(hdrDLSubject, m.Subject())
	if meta != nil {
		hdr.Set(jetstream.MsgIDHeader, fmt.Sprintf("dl:%s:%d:%s", meta.Stream, meta.Sequence.Stream, c.sub.String()))
	}
	dm := &nats.Msg{Subject: c.t.n.deadSubject(c.sub.SubscriptionRef), Header: hdr, Data: m.Data()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.t.js.PublishMsg(ctx, dm); err != nil {
		// Keep the message in the subscription: it comes back after a delay
		// and the dead-lettering is tried again.
		c.t.log.Error("troupe: could not store dead letter; will retry", "subscription", c.sub.String(), "err", err)
		c.settle(m, "nak", m.NakWithDelay(c.sub.Retry.MaxBackoff))
		return
	}
	c.t.log.Warn("troupe: dead-lettered", "subscription", c.sub.String(), "id", d.ID,
		"type", d.Type, "reason", reason, "attempts", d.Attempt, "err", errText)
	c.settle(m, "term", m.Term())
}

// Stop implements [transport.Consumer].
func (c *consumer) Stop(ctx context.Context) error {
	c.once.Do(func() {
		c.mu.Lock()
		c.stopping = true
		c.room.Broadcast()
		c.mu.Unlock()
		c.pullCancel()
		finished := make(chan struct{})
		go func() {
			c.pullers.Wait()
			c.workers.Wait()
			close(finished)
		}()
		select {
		case <-finished:
		case <-ctx.Done():
			c.cancel()
			c.stopErr = fmt.Errorf("natsjs: stop %s: handlers still running: %w", c.sub.String(), ctx.Err())
		}
		c.cancel()
		// Acks are sent without waiting for a reply; make sure the server has
		// them before saying the consumer stopped.
		if !c.t.nc.IsClosed() {
			if err := c.t.nc.FlushWithContext(ctx); err != nil && c.stopErr == nil && !errors.Is(err, nats.ErrConnectionClosed) {
				c.stopErr = fmt.Errorf("natsjs: stop %s: flush acks: %w", c.sub.String(), err)
			}
		}
		c.t.mu.Lock()
		delete(c.t.consumers, c)
		c.t.mu.Unlock()
		close(c.done)
	})
	<-c.done
	return c.stopErr
}

// Done implements [transport.Consumer].
func (c *consumer) Done() <-chan struct{} { return c.done }
