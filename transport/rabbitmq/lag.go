package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

var _ transport.Lagger = (*Transport)(nil)

// Lag implements [transport.Lagger]. It counts the messages ready in the
// subscription's queue plus those waiting in its retry queues, read with
// passive queue declarations (the message count of queue.declare-ok).
// AMQP does not report messages that are delivered and not yet acked, so
// events being handled or held in a consumer's prefetch are not counted;
// RabbitMQ's management API has them, as messages_unacknowledged.
//
// It costs one passive declaration per queue: the subscription's and one
// per retry delay bucket ([Config.RetryDelays]), and a new channel after
// each retry queue that does not exist yet (the broker closes the channel
// on a missing queue). It fails with an error wrapping
// [transport.ErrNotFound] when the subscription's queue does not exist,
// with [transport.ErrClosed] after Close, and with ctx's error when the
// broker has not answered before ctx ends.
func (t *Transport) Lag(ctx context.Context, sub transport.SubscriptionRef) (int64, error) {
	if t.isClosed() {
		return 0, fmt.Errorf("rabbitmq: lag: %w", transport.ErrClosed)
	}
	queues := make([]string, 0, 1+len(t.cfg.RetryDelays))
	queues = append(queues, t.n.queue(sub))
	for _, b := range t.cfg.RetryDelays {
		queues = append(queues, t.n.retryQueue(sub, b))
	}
	var total int64
	var ch *amqp.Channel
	defer func() {
		if ch != nil {
			ch.Close()
		}
	}()
	for i, q := range queues {
		if ch == nil {
			var err error
			if ch, err = t.con.channel(ctx); err != nil {
				return 0, fmt.Errorf("rabbitmq: lag of %s: %w", sub.String(), err)
			}
		}
		n, err := passiveCount(ctx, ch, q)
		if err == nil {
			total += int64(n)
			continue
		}
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
			return 0, fmt.Errorf("rabbitmq: lag of %s: queue %s: %w", sub.String(), q, err)
		}
		if i == 0 {
			return 0, fmt.Errorf("rabbitmq: lag of %s: %w: queue %s does not exist (was the subscription declared?)",
				sub.String(), transport.ErrNotFound, q)
		}
		// A retry queue that was never needed: the broker closed the
		// channel; open another for the next one.
		ch = nil
	}
	return total, nil
}

// passiveCount returns the number of ready messages in queue q. amqp091's
// calls take no context, so a broker that does not answer is cut off by
// closing the channel when ctx ends.
func passiveCount(ctx context.Context, ch *amqp.Channel, q string) (int, error) {
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		done <- result{st.Messages, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-ctx.Done():
		ch.Close()
		return 0, ctx.Err()
	}
}
