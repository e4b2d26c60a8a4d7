package rabbitmq

import (
	"context"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// tapMaxLength bounds a tap's queue; beyond it the broker drops the oldest
// events, so a slow tap never grows the broker's memory.
const tapMaxLength = 10000

// Tap implements [transport.Tapper] with a server-named, exclusive,
// auto-deleted queue bound to the namespace's exchange: it receives a copy
// of each event as published (not the retries and replays, which bypass
// the exchange) and vanishes with its channel. A lost connection ends the
// tap (Done is closed); open a new one.
func (t *Transport) Tap(ctx context.Context, topics []string, fn func(*transport.Message)) (transport.Tap, error) {
	keys := []string{"#"}
	if len(topics) > 0 {
		keys = keys[:0]
		for _, topic := range topics {
			if !transport.ValidName(topic) {
				return nil, fmt.Errorf("rabbitmq: tap: topic name %q: use a letter followed by letters, digits, '_' or '-'", topic)
			}
			keys = append(keys, t.n.binding(topic))
		}
	}
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	ch, err := t.con.channel(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(step string, err error) (transport.Tap, error) {
		_ = ch.Close()
		return nil, fmt.Errorf("rabbitmq: tap: %s: %w", step, err)
	}
	if err := t.declareExchange(ch); err != nil {
		return fail("declare exchange", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{
		"x-queue-type": "classic", "x-max-length": tapMaxLength, "x-overflow": "drop-head",
	})
	if err != nil {
		return fail("declare queue", err)
	}
	for _, k := range keys {
		if err := ch.QueueBind(q.Name, k, t.n.exchange(), false, nil); err != nil {
			return fail("bind "+k, err)
		}
	}
	// Not ConsumeWithContext: its cancel on ctx's end races the channel's
	// Close below, and each can take the other's reply and wait forever.
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fail("consume", err)
	}
	tp := &tap{ch: ch, done: make(chan struct{})}
	go func() {
		defer close(tp.done)
		defer tp.Close()
		for {
			select {
			case d, ok := <-deliveries:
				if !ok {
					return
				}
				if msg, err := decode(&d); err == nil {
					fn(&msg)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return tp, nil
}

type tap struct {
	ch   *amqp.Channel
	once sync.Once
	done chan struct{}
}

// Close implements [transport.Tap]: closing the channel deletes the queue.
func (tp *tap) Close() error {
	tp.once.Do(func() { _ = tp.ch.Close() })
	return nil
}

// Done implements [transport.Tap].
func (tp *tap) Done() <-chan struct{} { return tp.done }
