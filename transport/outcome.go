package transport

import (
	"errors"
	"time"
)

// Action is what a transport does with a delivery after its handler returned.
type Action int

// Actions a transport takes.
const (
	ActAck        Action = iota // done: remove it from the subscription
	ActRetry                    // hand it back to the broker for a later attempt
	ActDeadLetter               // move it to the subscription's dead-letter store
)

// Outcome is what became of one attempt at a delivery: the decision
// [Decide] takes from the handler's result, completed by the [Pipeline]
// with what only it knows (a compensation, a stop, the time the handler
// took). The pipeline decides it once and tells the delivery's [Hooks];
// observers read it rather than deciding again.
type Outcome struct {
	Action Action
	// Delay before the next attempt, for ActRetry.
	Delay time.Duration
	// Reason the delivery was dead-lettered, for ActDeadLetter.
	Reason Reason
	// Err is the handler's error as it returned it: nil when handled; the
	// cause of a compensation; for a delivery that never reached the
	// handler, why (malformed, oversized, misrouted).
	Err error
	// Compensated reports an ActAck of a delivery that failed for good and
	// was settled by its handler's [Hooks.Compensate] (a compensating event
	// was published) instead of being dead-lettered.
	Compensated bool
	// Interrupted reports an ActRetry of a delivery whose attempt was cut
	// off: the consumer stopped hard while the handler ran, it stopped
	// between two in-place attempts, or the broker took the delivery back
	// (a dropped connection). The delivery comes back at once, or when the
	// broker redelivers it.
	Interrupted bool
	// InPlace reports an ActRetry that the consumer holds and retries
	// itself after Delay, an ordered subscription keeping the later events
	// of the key waiting, rather than one handed back to the broker.
	InPlace bool
	// Began is when the attempt began; Took how long the handler ran,
	// middlewares and decoding included. Both are zero for a delivery that
	// never reached the handler.
	Began time.Time
	Took  time.Duration
}

// Kind names what became of a delivery: one name, used alike in logs, the
// journal, metrics, traces, the dashboard and tests.
type Kind string

// Kinds of outcome.
const (
	// KindHandled: the handler succeeded and the delivery was acknowledged.
	KindHandled Kind = "handled"
	// KindRetried: the handler failed; the delivery comes back after a
	// backoff (from the broker, or held in place by an ordered
	// subscription).
	KindRetried Kind = "retried"
	// KindDeadLettered: the delivery went to the subscription's dead
	// letters (last attempt, permanent error, unreadable, oversized,
	// misrouted or abandoned).
	KindDeadLettered Kind = "dead-lettered"
	// KindCompensated: the handler failed for good and the failure was
	// settled by a compensating event; the delivery was acknowledged.
	KindCompensated Kind = "compensated"
	// KindInterrupted: the attempt was cut off by a stop or a lost
	// connection; the delivery is delivered again.
	KindInterrupted Kind = "interrupted"
)

// Kind returns the name of o.
func (o Outcome) Kind() Kind {
	switch {
	case o.Compensated:
		return KindCompensated
	case o.Interrupted:
		return KindInterrupted
	case o.Action == ActAck:
		return KindHandled
	case o.Action == ActRetry:
		return KindRetried
	}
	return KindDeadLettered
}

// Decide turns a handler's result for attempt n into an outcome, following
// the delivery contract: nil acks; a permanent error, or any error on the last
// attempt, dead-letters; otherwise retry after [RetryAfter]'s delay or the
// policy's backoff. rnd is a uniform random number in [0,1) for jitter. Err
// is err as given. The [Pipeline] calls it once per attempt, so every
// transport retries alike; nothing else should call it to learn an
// outcome: the pipeline tells the delivery's [Hooks].
func Decide(err error, attempt int, p RetryPolicy, rnd float64) Outcome {
	switch {
	case err == nil:
		return Outcome{Action: ActAck}
	case IsPermanent(err):
		reason := ReasonPermanent
		if errors.Is(err, ErrMalformed) {
			reason = ReasonMalformed
		}
		return Outcome{Action: ActDeadLetter, Reason: reason, Err: err}
	case attempt >= p.MaxAttempts:
		return Outcome{Action: ActDeadLetter, Reason: ReasonFailed, Err: err}
	}
	if d, ok := RetryDelay(err); ok {
		return Outcome{Action: ActRetry, Delay: max(d, 0), Err: err}
	}
	return Outcome{Action: ActRetry, Delay: p.Delay(attempt, rnd), Err: err}
}
