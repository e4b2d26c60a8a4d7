package transport

import "context"

// Tapper is implemented by transports that can show a listener the events
// published to some topics as they pass, without a durable subscription:
// the listener gets each event at most once, only while its tap is open,
// and takes nothing from the subscriptions. troupe uses taps for
// request/reply and for live views of the choreography.
type Tapper interface {
	// Tap calls fn for each event published to one of topics (topic names,
	// every version; none means every topic of the namespace) from the
	// moment Tap returns until ctx ends or the tap is closed. fn runs on one
	// goroutine, in order of arrival, and must not block for long: a slow
	// tap loses events rather than slowing the broker.
	Tap(ctx context.Context, topics []string, fn func(*Message)) (Tap, error)
}

// Tap is an open tap.
type Tap interface {
	// Close stops the tap. It is safe to call more than once.
	Close() error
	// Done is closed once the tap has stopped: closed, its context ended,
	// the transport closed, or a connection it cannot outlive was lost.
	// Open a new tap to go on listening.
	Done() <-chan struct{}
}
