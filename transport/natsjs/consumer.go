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
type consumer struct {
	t     *Transport
	sub   transport.Subscription
	h     transport.Handler
	iters []jetstream.MessagesContext
	work  chan jetstream.Msg

	ctx    context.Context // handlers' base context, cancelled on a hard stop
	cancel context.CancelFunc

	mu       sync.Mutex
	stopping bool

	readers sync.WaitGroup
	workers sync.WaitGroup
	done    chan struct{}
	stopErr error
	once    sync.Once
}

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
	c := &consumer{t: t, sub: sub, h: h, work: make(chan jetstream.Msg), done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for _, jc := range []jetstream.Consumer{main, replay} {
		it, err := jc.Messages(jetstream.PullMaxMessages(sub.Prefetch))
		if err != nil {
			for _, it := range c.iters {
				it.Stop()
			}
			return nil, fmt.Errorf("natsjs: consume %s: %w", sub.String(), err)
		}
		c.iters = append(c.iters, it)
	}
	for range sub.Concurrency {
		c.workers.Add(1)
		go c.worker()
	}
	for _, it := range c.iters {
		c.readers.Add(1)
		go c.read(it)
	}
	go func() {
		c.readers.Wait()
		close(c.work)
	}()
	t.mu.Lock()
	t.consumers[c] = struct{}{}
	t.mu.Unlock()
	return c, nil
}

// read moves messages from one iterator to the workers. Once stopping, it
// hands the messages still buffered back to the server at once, so another
// consumer can take them without waiting for their lease.
func (c *consumer) read(it jetstream.MessagesContext) {
	defer c.readers.Done()
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if c.isStopping() || c.t.nc.IsClosed() {
				return
			}
			// Missed heartbeats and similar are reported here while the
			// iterator recovers on its own.
			c.t.log.Debug("troupe: consume", "subscription", c.sub.String(), "err", err)
			continue
		}
		if c.isStopping() {
			_ = m.Nak()
			continue
		}
		c.work <- m
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
			_ = m.Nak()
			continue
		}
		c.handle(m)
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

	// Renew the lease while the handler runs, so a slow handler keeps its
	// message and a dead process loses it after one lease.
	every := c.sub.Lease / 3
	var renewMu sync.Mutex
	renewing := true
	var renew *time.Timer
	renewMu.Lock()
	renew = time.AfterFunc(every, func() {
		renewMu.Lock()
		defer renewMu.Unlock()
		if renewing {
			_ = m.InProgress()
			renew.Reset(every)
		}
	})
	renewMu.Unlock()

	herr := c.call(d)

	renewMu.Lock()
	renewing = false
	renew.Stop()
	renewMu.Unlock()

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
		c.mu.Unlock()
		for _, it := range c.iters {
			it.Drain()
		}
		finished := make(chan struct{})
		go func() {
			c.readers.Wait()
			c.workers.Wait()
			close(finished)
		}()
		select {
		case <-finished:
		case <-ctx.Done():
			c.cancel()
			c.stopErr = fmt.Errorf("natsjs: stop %s: handlers still running: %w", c.sub.String(), ctx.Err())
			for _, it := range c.iters {
				it.Stop()
			}
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
