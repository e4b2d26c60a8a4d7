package transport

import "context"

// Lagger is implemented by transports that can tell how far a subscription
// is behind: how many of its events the broker holds that the subscription
// has not finished with. Metrics read it when they are scraped, so it asks
// the broker each time and caches nothing. It is optional: a transport
// without it simply has no lag to show.
type Lagger interface {
	// Lag returns the number of events stored for sub that it has not
	// finished: those waiting to be delivered, and, where the broker can
	// tell, those delivered and not yet settled (being handled, or waiting
	// for a retry). Each transport documents what it counts. It fails with
	// an error wrapping [ErrNotFound] for a subscription the broker does not
	// know (never declared), with [ErrClosed] after Close, and with the
	// broker's error or ctx's when the broker does not answer in time. Safe
	// for concurrent use.
	Lag(ctx context.Context, sub SubscriptionRef) (pending int64, err error)
}
