package troupe

import "time"

// Event is one delivery of a topic's event to a handler: the decoded data
// and the envelope that says where it came from.
type Event[T any] struct {
	// Data is the decoded event.
	Data T
	Envelope
}

// Envelope holds an event's CloudEvents attributes and its delivery state.
type Envelope struct {
	// ID identifies the event (ce-id). A retried handler that publishes gets
	// the same ids for what it publishes, so brokers that deduplicate drop the
	// second copy.
	ID string
	// Type is the wire type "<topic>.v<version>" (ce-type).
	Type string
	// Source names the app and service that published it (ce-source).
	Source string
	// Time is when it was published (ce-time).
	Time time.Time
	// CorrelationID is shared by every event of one business transaction.
	CorrelationID string
	// CausationID is the id of the event whose handler published this one;
	// empty for the first event of a transaction.
	CausationID string
	// TraceParent is the W3C trace context carried with the event.
	TraceParent string
	// Attempt counts deliveries of this event to this subscription, from 1.
	Attempt int
	// Replays counts how often the event was replayed from dead letters.
	Replays int
	// Subscription is the "service.name" of the subscription handling it.
	Subscription string
	// OrderingKey is the event's ordering key ([OrderBy]); "" when its
	// topic has none.
	OrderingKey string
}
