package natsjs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// hdrDLSubject records the subject a dead letter was delivered on; the
// other dead-letter headers are shared by all transports (package transport).
const hdrDLSubject = "troupe-dl-subject"

// ownHeaders are headers troupe writes beside the CloudEvents attributes.
var ownHeaders = []string{jetstream.MsgIDHeader, transport.HeaderReplays}

// handle runs one delivery and settles it with the server.
func (c *consumer) handle(m *nats.Msg) {
	started := time.Now()
	meta, err := m.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to settle.
		c.t.log.Warn("troupe: message without JetStream metadata", "subscription", c.sub.String(), "subject", m.Subject)
		return
	}
	attempt := int(meta.NumDelivered)
	first := meta.Timestamp
	hdr := m.Header
	d := &transport.Delivery{Subscription: c.sub.SubscriptionRef, Attempt: attempt}
	if r := hdr.Get(transport.HeaderReplays); r != "" {
		d.Replays, _ = strconv.Atoi(r)
	}
	msg, decErr := transport.DecodeHeaderMap(hdr, m.Data, ownHeaders...)
	d.Message = msg
	switch {
	case decErr != nil:
		c.deadLetter(m, d, transport.ReasonMalformed, decErr, first, started)
		return
	case len(m.Data) > c.sub.MaxMessageBytes:
		c.deadLetter(m, d, transport.ReasonOversized,
			fmt.Errorf("%w: %d bytes, subscription accepts %d", transport.ErrTooLarge, len(m.Data), c.sub.MaxMessageBytes), first, started)
		return
	case attempt > c.sub.Retry.MaxAttempts:
		d.Abandoned = fmt.Errorf("delivered %d times, limit %d: a consumer stopped or died during the last attempt", attempt, c.sub.Retry.MaxAttempts)
		if c.call(d) == nil {
			c.settle(m, "ack", m.Ack()) // settled by the handler (a compensation)
			return
		}
		c.deadLetter(m, d, transport.ReasonAbandoned, d.Abandoned, first, started)
		return
	}

	herr := c.call(d)
	out := transport.Decide(herr, attempt, c.sub.Retry, rand.Float64())
	// An ordered subscription retries in place, so the events behind this
	// one with its key wait for it.
	for c.sub.Ordered && out.Action == transport.ActRetry && c.waitRetry(out.Delay) {
		attempt++
		d.Attempt = attempt
		herr = c.call(d)
		out = transport.Decide(herr, attempt, c.sub.Retry, rand.Float64())
	}
	switch out.Action {
	case transport.ActAck:
		c.settle(m, "ack", m.Ack())
	case transport.ActRetry:
		if c.sub.Ordered {
			// Stopping in the middle of in-place retries: back at once, so
			// it is redelivered before the later events of its key.
			c.settle(m, "nak", m.Nak())
			break
		}
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

func (c *consumer) settle(m *nats.Msg, what string, err error) {
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.t.log.Warn("troupe: could not settle delivery; the broker will redeliver it",
			"subscription", c.sub.String(), "action", what, "err", err)
	}
}

// deadLetter stores the message in the subscription's dead-letter stream and
// only then terminates the delivery, so a crash in between leaves it in the
// subscription (to be dead-lettered again, deduplicated by the server) rather
// than nowhere.
func (c *consumer) deadLetter(m *nats.Msg, d *transport.Delivery, reason transport.Reason, cause error, first, last time.Time) {
	meta, _ := m.Metadata()
	errText := transport.ErrorText(cause)
	hdr := make(nats.Header, len(m.Header)+10)
	for k, vs := range m.Header {
		if k == jetstream.MsgIDHeader || len(k) > len(transport.DeadLetterHeaderPrefix) && k[:len(transport.DeadLetterHeaderPrefix)] == transport.DeadLetterHeaderPrefix {
			continue
		}
		hdr[k] = vs
	}
	now := time.Now()
	hdr.Set(transport.HeaderDeadReason, string(reason))
	hdr.Set(transport.HeaderDeadError, errText)
	hdr.Set(transport.HeaderDeadAttempts, strconv.Itoa(d.Attempt))
	hdr.Set(transport.HeaderDeadFirstAttempt, first.UTC().Format(time.RFC3339Nano))
	hdr.Set(transport.HeaderDeadLastAttempt, last.UTC().Format(time.RFC3339Nano))
	hdr.Set(transport.HeaderDeadAt, now.UTC().Format(time.RFC3339Nano))
	hdr.Set(hdrDLSubject, m.Subject)
	if meta != nil {
		hdr.Set(jetstream.MsgIDHeader, fmt.Sprintf("dl:%s:%d:%s", meta.Stream, meta.Sequence.Stream, c.sub.String()))
	}
	dm := &nats.Msg{Subject: c.t.n.deadSubject(c.sub.SubscriptionRef), Header: hdr, Data: m.Data}
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

// Stop implements [transport.Consumer]. It stops asking for messages, lets
// the subscriptions deliver what is already on its way (handing those back
// at once), waits for running handlers, and flushes their acks.
func (c *consumer) Stop(ctx context.Context) error {
	c.once.Do(func() {
		c.stopping.Store(true)
		close(c.stopped)
		for _, p := range c.pullers {
			_ = p.sub.Drain()
		}
		finished := make(chan struct{})
		go func() {
			for _, p := range c.pullers {
				p.waitClosed()
			}
			close(c.work) // no sender is left
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
		if !c.t.cnc.IsClosed() {
			if err := flush(ctx, c.t.cnc); err != nil && c.stopErr == nil && !errors.Is(err, nats.ErrConnectionClosed) {
				c.stopErr = fmt.Errorf("natsjs: stop %s: flush acks: %w", c.sub.String(), err)
			}
		}
		if c.gate != nil {
			c.gate.close() // after the flush: the next consumer starts where this one settled
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

// flush waits for the server to have everything sent so far, within ctx or,
// when ctx has no deadline (nats.go requires one), within flushTimeout.
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}

// flushTimeout bounds a flush whose context has no deadline.
const flushTimeout = 10 * time.Second
