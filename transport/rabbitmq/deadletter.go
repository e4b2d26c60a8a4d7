package rabbitmq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// storeDeadLetter publishes a dead letter to the subscription's dead-letter
// queue and waits for the confirm. If the queue is gone, it declares the
// subscription again and tries once more.
func (t *Transport) storeDeadLetter(ctx context.Context, sub transport.Subscription, pub amqp.Publishing) error {
	dlq := t.n.deadQueue(sub.SubscriptionRef)
	for try := 0; ; try++ {
		returned, err := t.send(ctx, []outgoing{{key: dlq, mandatory: true, msg: pub}})
		if err != nil {
			return err
		}
		if len(returned) == 0 {
			return nil
		}
		if try > 0 {
			return fmt.Errorf("rabbitmq: dead-letter queue %s does not exist: %s", dlq, returned[0].ReplyText)
		}
		if err := t.declare(ctx, sub); err != nil {
			return err
		}
	}
}

// lockDead serializes the scans of one dead-letter queue within this
// process, so that two of them do not hide letters from each other.
func (t *Transport) lockDead(ref transport.SubscriptionRef) func() {
	q := t.n.deadQueue(ref)
	t.mu.Lock()
	m := t.deadLocks[q]
	if m == nil {
		m = new(sync.Mutex)
		t.deadLocks[q] = m
	}
	t.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// scanDead takes every dead letter of ref with basic.get, without acking
// them, calls visit for each until visit says stop, and then puts back every
// letter visit did not settle itself, in one basic.nack. It takes all of
// them even when visit stopped early: a quorum queue puts returned messages
// behind the ones still in it, so returning only the first few would rotate
// the queue and spoil its oldest-first order. A subscription without a
// dead-letter queue has no dead letters.
func (t *Transport) scanDead(ctx context.Context, ref transport.SubscriptionRef, visit func(d *amqp.Delivery) (stop, settled bool, err error)) error {
	unlock := t.lockDead(ref)
	defer unlock()
	ch, err := t.con.channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	dlq := t.n.deadQueue(ref)
	var unacked uint64 // highest delivery tag taken and not settled
	defer func() {
		if unacked > 0 {
			// Closing the channel would return them too; nack first so that
			// they are back when the call returns.
			_ = ch.Nack(unacked, true, true)
		}
	}()
	visiting := true
	var visitErr error
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := ch.Get(dlq, false)
		if err != nil {
			var ae *amqp.Error
			if errors.As(err, &ae) && ae.Code == amqp.NotFound {
				return nil
			}
			return fmt.Errorf("read dead-letter queue %s: %w", dlq, err)
		}
		if !ok {
			return visitErr
		}
		settled := false
		if visiting {
			var stop bool
			stop, settled, visitErr = visit(&d)
			visiting = !stop && visitErr == nil
		}
		if !settled {
			unacked = d.DeliveryTag
		}
	}
}

// DeadLetters implements [transport.Transport]. See the package
// documentation for how listing works and what it costs.
func (t *Transport) DeadLetters(ctx context.Context, sub transport.SubscriptionRef, limit int) ([]transport.DeadLetter, error) {
	if t.isClosed() {
		return nil, fmt.Errorf("rabbitmq: dead letters: %w", transport.ErrClosed)
	}
	var out []transport.DeadLetter
	err := t.scanDead(ctx, sub, func(d *amqp.Delivery) (bool, bool, error) {
		out = append(out, decodeDeadLetter(sub, d))
		return limit > 0 && len(out) >= limit, false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: list dead letters of %s: %w", sub.String(), err)
	}
	return out, nil
}

// Replay implements [transport.Transport]. The message goes to the
// subscription's queue through the default exchange, which routes by queue
// name, so no other subscription of its topic sees it; then the dead letter
// is acked, which removes it. A crash in between leaves both.
func (t *Transport) Replay(ctx context.Context, sub transport.SubscriptionRef, id string) error {
	if t.isClosed() {
		return fmt.Errorf("rabbitmq: replay: %w", transport.ErrClosed)
	}
	return t.takeDeadLetter(ctx, sub, id, "replay", func(d *amqp.Delivery) error {
		pub := republish(d, []string{hdrAttempt, hdrFirstAttempt, hdrDue, transport.HeaderReplays}, transport.DeadLetterHeaderPrefix)
		replays, _ := headerInt(d.Headers, transport.HeaderReplays)
		pub.Headers[transport.HeaderReplays] = replays + 1
		returned, err := t.send(ctx, []outgoing{{key: t.n.queue(sub), mandatory: true, msg: pub}})
		if err != nil {
			return err
		}
		if len(returned) > 0 {
			return fmt.Errorf("the subscription's queue %s does not exist (%s): declare the subscription, then replay",
				t.n.queue(sub), returned[0].ReplyText)
		}
		return nil
	})
}

// Discard implements [transport.Transport].
func (t *Transport) Discard(ctx context.Context, sub transport.SubscriptionRef, id string) error {
	if t.isClosed() {
		return fmt.Errorf("rabbitmq: discard: %w", transport.ErrClosed)
	}
	return t.takeDeadLetter(ctx, sub, id, "discard", func(*amqp.Delivery) error { return nil })
}

// takeDeadLetter finds the dead letter with the given id, runs act on it
// and, if act succeeds, removes it.
func (t *Transport) takeDeadLetter(ctx context.Context, sub transport.SubscriptionRef, id, what string, act func(d *amqp.Delivery) error) error {
	found := false
	err := t.scanDead(ctx, sub, func(d *amqp.Delivery) (bool, bool, error) {
		if deadLetterID(d) != id {
			return false, false, nil
		}
		found = true
		if err := act(d); err != nil {
			return true, false, err
		}
		if err := d.Ack(false); err != nil {
			return true, true, fmt.Errorf("remove it from the dead-letter queue: %w", err)
		}
		return true, true, nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("rabbitmq: %s dead letter %s of %s: %w", what, id, sub.String(), err)
	case !found:
		return fmt.Errorf("rabbitmq: %s dead letter %s of %s: %w", what, id, sub.String(), transport.ErrNotFound)
	}
	return nil
}

// deadLetterID returns the id troupe gave a dead letter, or for one the
// broker dead-lettered by itself (a delivery limit, a TTL or length limit
// set by policy), a digest of its content, which is as stable.
func deadLetterID(d *amqp.Delivery) string {
	if id := headerText(d.Headers, hdrDLID); id != "" {
		return id
	}
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(d.Headers)) {
		if k == hdrDeliveryCount { // raised by every listing
			continue
		}
		fmt.Fprintf(h, "%q=%v\n", k, d.Headers[k])
	}
	fmt.Fprintf(h, "%s\n%s\n%d\n", d.MessageId, d.Type, d.Timestamp.Unix())
	h.Write(d.Body)
	return "b" + hex.EncodeToString(h.Sum(nil)[:12])
}

func decodeDeadLetter(sub transport.SubscriptionRef, d *amqp.Delivery) transport.DeadLetter {
	dl := transport.DeadLetter{ID: deadLetterID(d), Subscription: sub}
	transport.ReadDeadLetterHeaders(func(k string) string { return headerText(d.Headers, k) }, &dl)
	dl.Message, _ = decode(d)
	if headerText(d.Headers, hdrDLID) == "" {
		brokerDeadLetter(&dl, d)
	}
	if dl.Reason == transport.ReasonMalformed {
		dl.Headers = rawHeaders(d, transport.DeadLetterHeaderPrefix)
	}
	return dl
}

// brokerDeadLetter fills in what a dead letter the broker made by itself
// says about its death, from its x-death header.
func brokerDeadLetter(dl *transport.DeadLetter, d *amqp.Delivery) {
	reason := headerText(d.Headers, "x-first-death-reason")
	switch reason {
	case "delivery_limit":
		dl.Reason = transport.ReasonAbandoned
	case "":
		dl.Reason = "unknown"
	default:
		dl.Reason = transport.Reason(strings.ReplaceAll(reason, "_", " "))
	}
	dl.Error = "dead-lettered by the broker: " + reason
	if deaths, ok := d.Headers[hdrDeath].([]any); ok && len(deaths) > 0 {
		if death, ok := deaths[0].(amqp.Table); ok {
			if t, ok := death["time"].(time.Time); ok {
				dl.DeadAt = t
			}
		}
	}
}
