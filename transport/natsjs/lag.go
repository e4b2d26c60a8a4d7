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
// consumer on the events stream and its consumer on the replay stream, the
// messages not yet delivered (NumPending) and those delivered and not yet
// acknowledged (NumAckPending), which include the ones being handled, the
// ones held in a consumer's prefetch buffer and the ones waiting for a
// retry after a nak with delay. The server updates these counts a moment
// after it confirms a publish, so an event just published may not be
// counted yet. It costs two consumer-info requests to the server. It fails with an error wrapping [transport.ErrNotFound] for a
// subscription that was never declared, and with [transport.ErrClosed]
// after Close.
func (t *Transport) Lag(ctx context.Context, sub transport.SubscriptionRef) (int64, error) {
	if t.isClosed() {
		return 0, transport.ErrClosed
	}
	name := consumerName(sub)
	var total int64
	for _, s := range []jetstream.Stream{t.events, t.replay} {
		c, err := s.Consumer(ctx, name)
		if err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return 0, fmt.Errorf("natsjs: lag of %s: %w: no consumer %q on stream %s (was the subscription declared?)",
					sub.String(), transport.ErrNotFound, name, s.CachedInfo().Config.Name)
			}
			return 0, fmt.Errorf("natsjs: lag of %s: %w", sub.String(), err)
		}
		info := c.CachedInfo()
		total += int64(info.NumPending) + int64(info.NumAckPending)
	}
	return total, nil
}
