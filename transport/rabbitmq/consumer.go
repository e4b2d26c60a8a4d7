package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// settleTimeout bounds the publishes that settle one delivery (a retry, a
// dead letter, a hand-back on stop).
const settleTimeout = 30 * time.Second

// consumer runs the handlers of one subscription in this process.
//
// It consumes the subscription's queue on its own channel with a prefetch
// of Concurrency+Prefetch; deliveries go through a queue of that size to
// Concurrency workers. A delivery is settled on the channel it came from; if
// that channel is gone (the connection dropped), the broker has taken the
// message back, and the delivery is neither handled nor settled.
type consumer struct {
	t     *Transport
	sub   transport.Subscription
	pipe  *transport.Pipeline[delivery]
	queue string
	tag   string
	work  chan delivery

	ctx    context.Context // handlers' context, cancelled on a hard stop
	cancel context.CancelFunc

	stopping chan struct{} // closed by Stop: start no more handlers
	stopOnce sync.Once

	mu         sync.Mutex
	ch         *amqp.Channel // the channel consumed now
	notStarted []delivery    // fetched, not handled, to hand back on stop

	lastSettle atomic.Int64 // Unix nanoseconds of the last ack or nack sent

	workers  sync.WaitGroup
	done     chan struct{}
	doneOnce sync.Once
}

// delivery is a message with the channel it must be settled on.
type delivery struct {
	amqp.Delivery
	ch *amqp.Channel
}

// Consume implements [transport.Transport].
func (t *Transport) Consume(ctx context.Context, sub transport.Subscription, h transport.Handler) (transport.Consumer, error) {
	if t.isClosed() {
		return nil, fmt.Errorf("rabbitmq: consume: %w", transport.ErrClosed)
	}
	sub = sub.WithDefaults()
	if err := t.validate(sub); err != nil {
		return nil, err
	}
	if err := t.declare(ctx, sub); err != nil {
		return nil, err
	}
	c := &consumer{
		t: t, sub: sub,
		queue:    t.n.queue(sub.SubscriptionRef),
		tag:      "troupe-" + sub.String() + "-" + newID(),
		work:     make(chan delivery, sub.Concurrency+sub.Prefetch),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.pipe = transport.NewPipeline(sub, h, transport.Settler[delivery](c), transport.PipelineConfig{
		Context: c.ctx, Stopping: c.stopping, Logger: t.log,
	})
	ch, deliveries, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		ch.Close()
		return nil, fmt.Errorf("rabbitmq: consume: %w", transport.ErrClosed)
	}
	t.consumers[c] = struct{}{}
	t.mu.Unlock()
	c.workers.Go(func() { transport.Serve(sub, c.work, orderingKey, c.process) })
	go c.run(ch, deliveries)
	return c, nil
}

// open starts consuming on a new channel of the consume connection.
func (c *consumer) open(ctx context.Context) (*amqp.Channel, <-chan amqp.Delivery, error) {
	ch, err := c.t.con.channel(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := ch.Qos(c.sub.Concurrency+c.sub.Prefetch, 0, false); err != nil {
		ch.Close()
		return nil, nil, fmt.Errorf("rabbitmq: set prefetch of %s: %w", c.sub.String(), err)
	}
	deliveries, err := ch.Consume(c.queue, c.tag, false, false, false, false, nil)
	if err != nil {
		ch.Close()
		return nil, nil, fmt.Errorf("rabbitmq: consume %s: %w", c.sub.String(), err)
	}
	c.mu.Lock()
	c.ch = ch
	c.mu.Unlock()
	return ch, deliveries, nil
}

// run feeds deliveries to the workers, consumes again on a new channel
// whenever the old one is lost, and once stopping, winds the consumer down.
func (c *consumer) run(ch *amqp.Channel, deliveries <-chan amqp.Delivery) {
	for {
		for d := range deliveries {
			c.work <- delivery{Delivery: d, ch: ch}
		}
		if c.isStopping() || c.linkStopped() {
			break
		}
		// The channel closed, or the broker cancelled the consumer (its
		// queue was deleted): consume again once possible.
		ch.Close()
		c.t.log.Warn("troupe: consumer lost its channel; consuming again", "subscription", c.sub.String())
		var ok bool
		if ch, deliveries, ok = c.reopen(); !ok {
			break
		}
		if c.isStopping() {
			_ = ch.Cancel(c.tag, false) // Stop came while reopening
		}
	}
	close(c.work)
	c.workers.Wait()
	c.handBack()
	c.mu.Lock()
	ch = c.ch
	c.mu.Unlock()
	if ch != nil && !ch.IsClosed() {
		c.awaitSettles()
		ch.Close()
	}
	c.finish()
}

// reopen declares the subscription again and consumes on a new channel,
// retrying with a backoff; ok is false once stopping.
func (c *consumer) reopen() (ch *amqp.Channel, deliveries <-chan amqp.Delivery, ok bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stopping:
		case <-c.t.con.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, nil, false
		}
		wait = min(2*wait, c.t.cfg.ReconnectDelay)
		err := c.t.declare(ctx, c.sub)
		if err == nil {
			ch, deliveries, err = c.open(ctx)
		}
		if err == nil {
			return ch, deliveries, true
		}
		if ctx.Err() != nil {
			return nil, nil, false
		}
		if attempt%10 == 1 {
			c.t.log.Warn("troupe: cannot consume again yet", "subscription", c.sub.String(), "attempt", attempt, "err", err)
		}
	}
}

func (c *consumer) isStopping() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}

func (c *consumer) linkStopped() bool {
	select {
	case <-c.t.con.stop:
		return true
	default:
		return false
	}
}

// orderingKey returns a delivery's ordering key, "" when it has none.
func orderingKey(d delivery) string {
	key, _ := headerString(d.Headers["ce-"+transport.PartitionKey])
	return key
}

// process handles d, or keeps it to hand back when the consumer is
// stopping.
func (c *consumer) process(d delivery) {
	switch {
	case d.ch.IsClosed():
		// The broker took it back when the channel closed.
	case c.isStopping():
		c.mu.Lock()
		c.notStarted = append(c.notStarted, d)
		c.mu.Unlock()
	default:
		c.handle(d)
	}
}

// handBack returns the messages fetched but not started to the queue. It
// republishes them with their attempt number unchanged and then acks them,
// rather than basic.nack them: a nack counts as a redelivery, which a
// message that was never handled must not pay for with an attempt.
func (c *consumer) handBack() {
	c.mu.Lock()
	var items []delivery
	for _, d := range c.notStarted {
		if !d.ch.IsClosed() {
			items = append(items, d)
		}
	}
	c.notStarted = nil
	c.mu.Unlock()
	if len(items) == 0 {
		return
	}
	out := make([]outgoing, len(items))
	for i, d := range items {
		pub := republish(&d.Delivery, []string{hdrAttempt})
		pub.Headers[hdrAttempt] = int64(attemptOf(&d.Delivery))
		out[i] = outgoing{key: c.queue, mandatory: true, msg: pub}
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	returned, err := c.t.send(ctx, out)
	if err != nil || len(returned) > 0 {
		if err == nil {
			err = fmt.Errorf("queue %s: %s", c.queue, returned[0].ReplyText)
		}
		c.t.log.Warn("troupe: could not hand back unstarted messages; returning them with basic.nack, which counts an attempt",
			"subscription", c.sub.String(), "messages", len(items), "err", err)
		for _, d := range items {
			c.settle("nack", d.Nack(false, true))
		}
		return
	}
	// Every other delivery of the channel is settled by now, so one
	// multiple ack settles exactly these, in one command to the queue.
	last := items[0]
	for _, d := range items {
		if d.DeliveryTag > last.DeliveryTag {
			last = d
		}
	}
	c.settle("ack", last.Ack(true))
}

// handle reads one delivery and hands it to the subscription's pipeline,
// which settles it through the consumer's [transport.Settler] methods. A
// retry that came back from the largest delay bucket before it is due goes
// round again first.
func (c *consumer) handle(d delivery) {
	started := time.Now()
	attempt := attemptOf(&d.Delivery)
	if due, ok := headerInt(d.Headers, hdrDue); ok {
		switch wait := time.UnixMilli(due).Sub(started); {
		case wait >= time.Millisecond:
			c.park(d, attempt, wait)
			return
		case wait > 0:
			time.Sleep(wait) // less than a round trip through a bucket
		}
	}
	msg, readErr := decode(&d.Delivery)
	replays, _ := headerInt(d.Headers, transport.HeaderReplays)
	del := &transport.Delivery{
		Message:      msg,
		Subscription: c.sub.SubscriptionRef,
		Attempt:      attempt,
		Replays:      int(replays),
	}
	c.pipe.Deliver(d, del, readErr, headerTime(d.Headers, hdrFirstAttempt))
}

// Held implements [transport.Settler]: a delivery is settled on the
// channel it came from; once that channel is gone (the connection
// dropped), the broker has taken the message back and delivers it again.
func (c *consumer) Held(d delivery) bool { return !d.ch.IsClosed() }

// Ack implements [transport.Settler].
func (c *consumer) Ack(d delivery) error { return c.settled(d.Ack(false)) }

// Terminate implements [transport.Settler]: the dead letter is stored, so
// the delivery is acked.
func (c *consumer) Terminate(d delivery) error { return c.settled(d.Ack(false)) }

// Retry implements [transport.Settler]: it sends a copy to the retry path
// as attempt next, and once the broker confirmed it acks the delivery. If
// the copy cannot be sent, the delivery goes back to its queue at once
// (basic.nack): the broker counts that as a redelivery, so the attempt is
// not lost.
func (c *consumer) Retry(d delivery, next int, delay time.Duration, first time.Time) error {
	pub := republish(&d.Delivery, []string{hdrAttempt, hdrFirstAttempt, hdrDue})
	pub.Headers[hdrAttempt] = int64(next)
	pub.Headers[hdrFirstAttempt] = formatTime(first)
	ctx, cancel := context.WithTimeout(c.ctx, settleTimeout)
	defer cancel()
	if err := c.t.schedule(ctx, c.sub.SubscriptionRef, pub, delay); err != nil {
		c.t.log.Warn("troupe: could not schedule a retry; returning the message to its queue now",
			"subscription", c.sub.String(), "err", err)
		return c.settled(d.Nack(false, true))
	}
	return c.settled(d.Ack(false))
}

// StoreDeadLetter implements [transport.Settler]: it publishes the
// delivery, with the dead-letter headers and an id of its own, to the
// subscription's dead-letter queue and waits for the confirm.
func (c *consumer) StoreDeadLetter(d delivery, dl *transport.DeadLetter) error {
	pub := republish(&d.Delivery, []string{hdrAttempt, hdrFirstAttempt, hdrDue}, transport.DeadLetterHeaderPrefix)
	pub.Headers[hdrDLID] = newID()
	transport.WriteDeadLetterHeaders(dl, func(k, v string) { pub.Headers[k] = v })
	ctx, cancel := context.WithTimeout(c.ctx, settleTimeout)
	defer cancel()
	return c.t.storeDeadLetter(ctx, c.sub, pub)
}

// park sends a retry that came back from the largest delay bucket before
// it is due through the retry path again, without handling it.
func (c *consumer) park(d delivery, attempt int, wait time.Duration) {
	pub := republish(&d.Delivery, []string{hdrAttempt, hdrDue})
	pub.Headers[hdrAttempt] = int64(attempt)
	ctx, cancel := context.WithTimeout(c.ctx, settleTimeout)
	defer cancel()
	if err := c.t.schedule(ctx, c.sub.SubscriptionRef, pub, wait); err != nil {
		c.t.log.Error("troupe: could not park a delayed retry; returning the message to its queue",
			"subscription", c.sub.String(), "err", err)
		c.pause(time.Second)
		c.settle("nack", d.Nack(false, true))
		return
	}
	c.settle("ack", d.Ack(false))
}

// settleGrace is how long a consumer's channel stays open after its last
// ack. Quorum queues on RabbitMQ 3.10 take acks to the queue in the
// background, holding back all but about 32 unapplied at a time, and drop
// the held ones when the channel closes: the messages come back as if never
// acked. A few milliseconds let them through on a local broker.
const settleGrace = 100 * time.Millisecond

// awaitSettles waits until settleGrace has passed since the last ack or
// nack, or the consumer stops hard.
func (c *consumer) awaitSettles() {
	if wait := settleGrace - time.Since(time.Unix(0, c.lastSettle.Load())); wait > 0 {
		c.pause(wait)
	}
}

// pause waits for d or until the consumer stops hard.
func (c *consumer) pause(d time.Duration) {
	select {
	case <-time.After(d):
	case <-c.ctx.Done():
	}
}

// settled notes the time of a successful ack or nack, and marks the error
// of a closed channel, which the pipeline does not report.
func (c *consumer) settled(err error) error {
	if err == nil {
		c.lastSettle.Store(time.Now().UnixNano())
		return nil
	}
	if errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("%w: %v", transport.ErrClosed, err)
	}
	return err
}

// settle settles what the consumer handles outside the pipeline (parked
// retries, messages handed back on stop), logging a failure.
func (c *consumer) settle(what string, err error) {
	if err = c.settled(err); err != nil && !errors.Is(err, transport.ErrClosed) {
		c.t.log.Warn("troupe: could not settle delivery; the broker will redeliver it",
			"subscription", c.sub.String(), "action", what, "err", err)
	}
}

// Stop implements [transport.Consumer]. It cancels the consumer on the
// broker, lets running handlers finish and settle, and hands back what was
// fetched but not started. If ctx ends first, it cancels the handlers'
// context and closes the channel, so the broker redelivers every unsettled
// message at once.
func (c *consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		close(c.stopping)
		c.mu.Lock()
		ch := c.ch
		c.mu.Unlock()
		// basic.cancel is a round trip; do not let a dead connection hold
		// Stop beyond ctx.
		go func() { _ = ch.Cancel(c.tag, false) }()
	})
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
	}
	c.cancel()
	c.mu.Lock()
	ch := c.ch
	c.mu.Unlock()
	ch.Close()
	c.finish()
	return fmt.Errorf("rabbitmq: stop %s: handlers still running, their messages go back to the queue: %w", c.sub.String(), ctx.Err())
}

// finish marks the consumer stopped.
func (c *consumer) finish() {
	c.doneOnce.Do(func() {
		c.cancel()
		c.t.mu.Lock()
		delete(c.t.consumers, c)
		c.t.mu.Unlock()
		close(c.done)
	})
}

// Done implements [transport.Consumer].
func (c *consumer) Done() <-chan struct{} { return c.done }

// newID returns 12 random bytes in hex.
func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
