package troupe

import (
	"context"
	"log/slog"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// Outcome names what became of one attempt at handling an event. The same
// names are used everywhere: logs, the journal, metrics, traces, the
// dashboard and troupetest.
type Outcome = transport.Kind

// Outcomes of an attempt.
const (
	// Handled: the handler succeeded; the event is acknowledged.
	Handled = transport.KindHandled
	// Retried: the handler failed and attempts are left; the event comes
	// back after Settlement.Delay.
	Retried = transport.KindRetried
	// DeadLettered: the handler failed for good (a permanent error, the
	// last attempt, an event that could not be decoded, or one abandoned by
	// a consumer that died) and the event went to the subscription's dead
	// letters.
	DeadLettered = transport.KindDeadLettered
	// Compensated: the handler failed for good and the subscription's
	// [OnFailure] event was published; the event is acknowledged.
	Compensated = transport.KindCompensated
	// Interrupted: the attempt was cut off (the consumer stopped hard, or
	// lost its connection to the broker); the event is delivered again.
	Interrupted = transport.KindInterrupted
)

// Settlement is what became of one attempt at handling an event, decided
// once and told to every [Middleware.Settled].
type Settlement struct {
	// Subscription handled the event.
	Subscription *Subscription
	// Delivery is the attempt: the event's attributes and data, its
	// attempt number and replays. Read it; do not keep it.
	Delivery *transport.Delivery
	// Outcome names what became of it.
	Outcome Outcome
	// Err is the handler's error: nil when handled, the cause when
	// compensated.
	Err error
	// Delay is the wait before the next attempt, when retried.
	Delay time.Duration
	// InPlace reports a retry held in this process (an ordered
	// subscription keeps the later events of the key waiting) rather than
	// handed back to the broker.
	InPlace bool
	// Reason says why the event was dead-lettered.
	Reason transport.Reason
	// Began is when the attempt began; Took how long the Handle chain and
	// the handler ran.
	Began time.Time
	Took  time.Duration
}

// logSettled logs what became of one attempt, once, as the pipeline
// decided it.
func (a *App) logSettled(sub *Subscription, d *transport.Delivery, o transport.Outcome) {
	ref := sub.String()
	switch o.Kind() {
	case Handled:
		if !a.log.Enabled(context.Background(), slog.LevelDebug) {
			return // skip boxing the attributes on the hot path
		}
		a.log.Debug("handled", "subscription", ref, "type", d.Type, "id", d.ID,
			"correlation", d.CorrelationID, "attempt", d.Attempt, "took", o.Took)
	case Retried:
		a.log.Warn("handler failed", "subscription", ref, "type", d.Type, "id", d.ID, "correlation", d.CorrelationID,
			"attempt", d.Attempt, "of", sub.cfg.spec.Retry.MaxAttempts, "retry_in", o.Delay, "err", o.Err)
	case DeadLettered:
		a.log.Error("handler failed", "subscription", ref, "type", d.Type, "id", d.ID, "correlation", d.CorrelationID,
			"attempt", d.Attempt, "of", sub.cfg.spec.Retry.MaxAttempts, "dead_letter", o.Reason, "err", o.Err)
	case Compensated:
		a.log.Warn("compensated", "subscription", ref, "type", d.Type, "id", d.ID,
			"correlation", d.CorrelationID, "failure", sub.cfg.compensate.topic.Type(), "cause", o.Err)
	case Interrupted:
		a.log.Info("handling interrupted; the event will be delivered again", "subscription", ref, "type", d.Type,
			"id", d.ID, "correlation", d.CorrelationID, "attempt", d.Attempt, "err", o.Err)
	}
}
