package journal

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/troupe-go/troupe"
)

// Outcome is what became of one publish or one handling attempt.
type Outcome string

// Outcomes. A publish is [Published] or [Failed]; a handling attempt is
// one of the others, named as troupe names them (troupe.Outcome) and as
// troupe decided it.
const (
	// Published: the broker stored the event.
	Published Outcome = "published"
	// Failed: a publish the broker did not confirm.
	Failed Outcome = "failed"

	// Handled: the handler returned nil and the event was acknowledged.
	Handled = Outcome(troupe.Handled)
	// Retried: the handler failed and the event will be delivered again
	// after a backoff.
	Retried = Outcome(troupe.Retried)
	// DeadLettered: the handler failed for good (a permanent error, the
	// last attempt, an event that could not be decoded, an abandoned one)
	// and the event went to the subscription's dead letters.
	DeadLettered = Outcome(troupe.DeadLettered)
	// Compensated: the handler failed for good and the subscription's
	// OnFailure event was published instead of a dead letter; Error holds
	// the handler's error.
	Compensated = Outcome(troupe.Compensated)
	// Interrupted: the handling was cut off by the consumer stopping, or
	// by a lost connection; the event will be delivered again. (Journals
	// written before this version record these as failed.)
	Interrupted = Outcome(troupe.Interrupted)
)

// Kind tells publishes and handlings apart.
type Kind string

// Kinds of entries.
const (
	KindPublish Kind = "publish"
	KindHandle  Kind = "handle"
)

// Entry is one record of the journal: a publish of one event or one
// attempt at handling one.
type Entry struct {
	// Kind says whether the entry records a publish or a handling.
	Kind Kind `json:"kind"`
	// Time is when the publish or the attempt began.
	Time time.Time `json:"time"`
	// Duration is how long it took: until the broker confirmed a publish,
	// or until the handler returned.
	Duration time.Duration `json:"duration_ns"`
	// CorrelationID is the business transaction's id.
	CorrelationID string `json:"correlation"`
	// EventID is the event published or handled.
	EventID string `json:"event"`
	// CausationID is the event whose handler published this event; empty
	// for the first event of a transaction.
	CausationID string `json:"causation,omitempty"`
	// Type is the event's wire type, "<topic>.v<N>".
	Type string `json:"type"`
	// Service published the event, or owns the subscription that handled
	// it.
	Service string `json:"service,omitempty"`
	// Subscription is the "service.name" that handled the event; for a
	// publish, the one whose handler published it (empty outside handlers).
	Subscription string `json:"subscription,omitempty"`
	// Attempt is the handling attempt, from 1; for a publish, the attempt
	// of the handler that published it (0 outside handlers).
	Attempt int `json:"attempt,omitempty"`
	// Replays counts how often the handled event had been replayed from
	// dead letters; for a publish, that count of the handling that
	// published it.
	Replays int `json:"replays,omitempty"`
	// Outcome is what became of it.
	Outcome Outcome `json:"outcome"`
	// Error is the error's text, cut to the journal's error limit, for
	// retried, dead-lettered, compensated and failed entries.
	Error string `json:"error,omitempty"`
	// Depth is the entry's depth in the transaction's causal tree, set by
	// [Trace]: 0 for the first event, one more for each handling and
	// publish that follows from it. Not stored.
	Depth int `json:"depth,omitempty"`
}

// IsPublish reports whether e records a publish rather than a handling.
func (e Entry) IsPublish() bool { return e.Kind == KindPublish }

// String returns a one-line summary of e, for logs.
func (e Entry) String() string {
	what := e.Type + " " + string(e.Outcome)
	if !e.IsPublish() {
		what = fmt.Sprintf("%s attempt %d of %s: %s", e.Subscription, e.Attempt, e.Type, e.Outcome)
	}
	if e.Error != "" {
		what += ": " + e.Error
	}
	return what
}

func decodeEntry(data []byte) (Entry, error) {
	var e Entry
	err := json.Unmarshal(data, &e)
	e.Depth = 0
	return e, err
}
