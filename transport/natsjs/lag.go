package natsjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

var _ transport.Lagger = (*Transport)(nil)

// Lag implements [transport.Lagger]. It adds up, for the subscription's
// consumer on its topic's events stream and its consumer on the replay
// stream, the messages not yet delivered (NumPending) and those delivered
// and not yet acknowledged (NumAckPending), which include the ones being
// handled, the ones held in a consumer's prefetch buffer and the ones
// waiting for a retry after a nak with delay. The server updates these
// counts a moment after it confirms a publish, so an event just published
// may not be counted yet. It costs two consumer-info requests to the
// server; Lag of a subscription this transport did not declare may also
// look through the consumers of the namespace's event streams (at most
// every 5 seconds).
// It fails with an error wrapping [transport.ErrNotFound] for a
// subscription that was never declared, and with [transport.ErrClosed]
// after Close.
func (t *Transport) Lag(ctx context.Context, sub transport.SubscriptionRef) (int64, error) {
	if t.isClosed() {
		return 0, transport.ErrClosed
	}
	name := consumerName(sub)
	events, err := t.subscriptionStream(ctx, sub)
	if err != nil {
		return 0, fmt.Errorf("natsjs: lag of %s: %w", sub.String(), err)
	}
	if events == "" {
		return 0, fmt.Errorf("natsjs: lag of %s: %w: no consumer %q on the namespace's event streams (was the subscription declared?)",
			sub.String(), transport.ErrNotFound, name)
	}
	var total int64
	for _, s := range []string{events, t.n.replayStream()} {
		c, err := t.js.Consumer(ctx, s, name)
		if err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
				return 0, fmt.Errorf("natsjs: lag of %s: %w: no consumer %q on stream %s (was the subscription declared?)",
					sub.String(), transport.ErrNotFound, name, s)
			}
			return 0, fmt.Errorf("natsjs: lag of %s: %w", sub.String(), err)
		}
		info := c.CachedInfo()
		total += int64(info.NumPending) + int64(info.NumAckPending)
	}
	return total, nil
}
