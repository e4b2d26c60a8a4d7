package troupe

import (
	"time"

	"github.com/troupe-go/troupe/transport"
)

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
	// Extensions holds the event's CloudEvents extension attributes other
	// than those above, by lower-case name: the ordering key's
	// "partitionkey", a trace's "tracestate", and whatever a foreign
	// producer sent (a ce-tenant header is "tenant"). nil when there are
	// none. Shared with the delivery: read it, do not change it.
	Extensions map[string]string
}

// EnvelopeOf returns the envelope of m as a handler is given it: its
// attributes, with the delivery's own fields (Attempt, Replays,
// Subscription) zero. Every envelope troupe builds (for handlers,
// request/reply, troupetest) comes from it.
func EnvelopeOf(m *transport.Message) Envelope {
	return Envelope{
		ID: m.ID, Type: m.Type, Source: m.Source, Time: m.Time,
		CorrelationID: m.CorrelationID, CausationID: m.CausationID, TraceParent: m.TraceParent,
		OrderingKey: m.Extensions[transport.PartitionKey], Extensions: m.Extensions,
	}
}

// deliveryEnvelope returns the envelope of d to the subscription named sub
// ("service.name").
func deliveryEnvelope(d *transport.Delivery, sub string) Envelope {
	e := EnvelopeOf(&d.Message)
	e.Attempt, e.Replays, e.Subscription = d.Attempt, d.Replays, sub
	return e
}
