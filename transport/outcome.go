package transport

import (
	"errors"
	"fmt"
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

// Outcome is the decision for one delivery.
type Outcome struct {
	Action Action
	// Delay before the next attempt, for ActRetry.
	Delay time.Duration
	// Reason and Err, for ActDeadLetter.
	Reason Reason
	Err    error
}

// Decide turns a handler's result for attempt n into an outcome, following
// the delivery contract: nil acks; a permanent error, or any error on the last
// attempt, dead-letters; otherwise retry after [RetryAfter]'s delay or the
// policy's backoff. rnd is a uniform random number in [0,1) for jitter. Every
// transport uses it, so all of them retry alike.
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
		return Outcome{Action: ActDeadLetter, Reason: ReasonFailed,
			Err: fmt.Errorf("attempt %d of %d: %w", attempt, p.MaxAttempts, err)}
	}
	if d, ok := RetryDelay(err); ok {
		return Outcome{Action: ActRetry, Delay: max(d, 0), Err: err}
	}
	return Outcome{Action: ActRetry, Delay: p.Delay(attempt, rnd), Err: err}
}
