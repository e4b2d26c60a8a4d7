package natsjs

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/troupe-go/troupe/transport"
)

// tapBuffer bounds the messages a tap holds before the client drops them
// as a slow consumer.
const tapBuffer = 8192

// Tap implements [transport.Tapper] with core NATS subscriptions on the
// events subjects: JetStream stores each event and the server also hands
// it to plain subscribers, so a tap takes nothing from the streams. Core
// subscriptions survive reconnects, but events published while the client
// was disconnected are not seen.
func (t *Transport) Tap(ctx context.Context, topics []string, fn func(*transport.Message)) (transport.Tap, error) {
	subjects := []string{t.n.eventsSubjects()}
	if len(topics) > 0 {
		subjects = subjects[:0]
		for _, topic := range topics {
			if !transport.ValidName(topic) {
				return nil, fmt.Errorf("natsjs: tap: topic name %q: use a letter followed by letters, digits, '_' or '-'", topic)
			}
			subjects = append(subjects, t.n.topicFilter(topic))
		}
	}
	tp := &tap{msgs: make(chan *nats.Msg, tapBuffer), done: make(chan struct{}), stop: make(chan struct{})}
	for _, subj := range subjects {
		sub, err := t.nc.ChanSubscribe(subj, tp.msgs)
		if err != nil {
			tp.unsubscribe()
			return nil, fmt.Errorf("natsjs: tap %s: %w", subj, err)
		}
		_ = sub.SetPendingLimits(tapBuffer, 64<<20)
		tp.subs = append(tp.subs, sub)
	}
	// The server must know of the subscriptions before Tap returns, or an
	// event published right after could pass unseen.
	if err := flush(ctx, t.nc); err != nil {
		tp.unsubscribe()
		return nil, fmt.Errorf("natsjs: tap: %w", err)
	}
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		tp.unsubscribe()
		return nil, transport.ErrClosed
	}
	if t.taps == nil {
		t.taps = make(map[*tap]struct{})
	}
	t.taps[tp] = struct{}{}
	t.mu.Unlock()
	go func() {
		defer func() {
			tp.unsubscribe()
			t.mu.Lock()
			delete(t.taps, tp)
			t.mu.Unlock()
			close(tp.done)
		}()
		for {
			select {
			case m := <-tp.msgs:
				msg, err := transport.DecodeHeaderMap(m.Header, m.Data, ownHeaders...)
				if err == nil {
					fn(&msg)
				}
			case <-ctx.Done():
				return
			case <-tp.stop:
				return
			}
		}
	}()
	return tp, nil
}

type tap struct {
	msgs chan *nats.Msg
	subs []*nats.Subscription
	once sync.Once
	stop chan struct{}
	done chan struct{}
}

func (tp *tap) unsubscribe() {
	for _, s := range tp.subs {
		_ = s.Unsubscribe()
	}
}

// Close implements [transport.Tap].
func (tp *tap) Close() error {
	tp.once.Do(func() { close(tp.stop) })
	return nil
}

// Done implements [transport.Tap].
func (tp *tap) Done() <-chan struct{} { return tp.done }
