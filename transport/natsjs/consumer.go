package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// handle reads one message and hands it to the subscription's pipeline,
// which settles it through the consumer's [transport.Settler] methods.
func (c *consumer) handle(m *nats.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to settle.
		c.t.log.Warn("troupe: message without JetStream metadata", "subscription", c.sub.String(), "subject", m.Subject)
		return
	}
	d := &transport.Delivery{Subscription: c.sub.SubscriptionRef, Attempt: int(meta.NumDelivered)}
	if r := m.Header.Get(transport.HeaderReplays); r != "" {
		d.Replays, _ = strconv.Atoi(r)
	}
	msg, readErr := transport.DecodeHeaderMap(m.Header, m.Data, ownHeaders...)
	d.Message = msg
	// The server counts deliveries, not when the first began: the time the
	// event was stored stands in for it.
	c.pipe.Deliver(m, d, readErr, meta.Timestamp)
}

// Held implements [transport.Settler]: a JetStream message can be settled
// until its connection is closed; after that the server redelivers it once
// its lease runs out. (While the client reconnects, settles wait.)
func (c *consumer) Held(*nats.Msg) bool { return !c.t.cnc.IsClosed() }

// Ack implements [transport.Settler].
func (c *consumer) Ack(m *nats.Msg) error { return settleErr(m.Ack()) }

// Retry implements [transport.Settler] with a negative ack: the server
// counts the delivery and redelivers after delay.
func (c *consumer) Retry(m *nats.Msg, _ int, delay time.Duration, _ time.Time) error {
	if delay <= 0 {
		return settleErr(m.Nak())
	}
	return settleErr(m.NakWithDelay(delay))
}

// Terminate implements [transport.Settler].
func (c *consumer) Terminate(m *nats.Msg) error { return settleErr(m.Term()) }

// settleErr marks the errors of a closed connection, which the pipeline
// does not report: the server redelivers the message after its lease.
func settleErr(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("%w: %v", transport.ErrClosed, err)
	}
	return err
}

// StoreDeadLetter implements [transport.Settler]: it stores the message,
// with the dead-letter headers, in the subscription's dead-letter stream.
// Its message id is derived from the message's place in its stream, so a
// second store of the same dead letter (the delivery came back before it
// was terminated) is dropped by the server.
func (c *consumer) StoreDeadLetter(m *nats.Msg, dl *transport.DeadLetter) error {
	meta, _ := m.Metadata()
	hdr := make(nats.Header, len(m.Header)+10)
	for k, vs := range m.Header {
		if k == jetstream.MsgIDHeader || strings.HasPrefix(k, transport.DeadLetterHeaderPrefix) {
			continue
		}
		hdr[k] = vs
	}
	transport.WriteDeadLetterHeaders(dl, hdr.Set)
	hdr.Set(hdrDLSubject, m.Subject)
	if meta != nil {
		hdr.Set(jetstream.MsgIDHeader, fmt.Sprintf("dl:%s:%d:%s", meta.Stream, meta.Sequence.Stream, c.sub.String()))
	}
	dm := &nats.Msg{Subject: c.t.n.deadSubject(c.sub.SubscriptionRef), Header: hdr, Data: m.Data}
	ctx, cancel := context.WithTimeout(c.ctx, deadLetterTimeout)
	defer cancel()
	if _, err := c.t.js.PublishMsg(ctx, dm); err != nil {
		return fmt.Errorf("natsjs: store dead letter of %s: %w", c.sub.String(), settleErr(err))
	}
	return nil
}

// deadLetterTimeout bounds one try at storing a dead letter.
const deadLetterTimeout = 30 * time.Second

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
			c.handBack()
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
