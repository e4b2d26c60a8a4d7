package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"time"
)

// Settler settles deliveries of a driver's message type M with its broker.
// A driver implements it once, and its consumer hands each message it
// receives to a [Pipeline], which decides what becomes of it and calls the
// Settler to do it. Methods are called from the goroutine that called
// [Pipeline.Deliver], never two at once for one message. Errors that only
// say the connection is gone should wrap [ErrClosed]: the broker then
// redelivers the message, and the pipeline does not log them.
type Settler[M any] interface {
	// Held reports whether m can still be settled; false once the broker
	// has taken it back (the channel or connection it came on is gone), in
	// which case the broker delivers it again and nothing is settled.
	Held(m M) bool
	// Ack removes m from the subscription.
	Ack(m M) error
	// Retry hands m back to the broker, to be delivered again after delay
	// (at once for 0) as attempt next. first is when the message's first
	// attempt began, for transports that carry it. A broker that counts
	// deliveries itself may ignore next.
	Retry(m M, next int, delay time.Duration, first time.Time) error
	// StoreDeadLetter writes dl to the subscription's dead-letter store and
	// waits until the broker has it. It must not settle m: on error the
	// pipeline keeps m and tries again.
	StoreDeadLetter(m M, dl *DeadLetter) error
	// Terminate removes m from the subscription once its dead letter is
	// stored.
	Terminate(m M) error
}

// Hooks let a handler take part in what becomes of one delivery. A handler
// registers them with [Delivery.SetHooks] while it runs; the pipeline
// resets them before each attempt.
type Hooks interface {
	// Compensate is called when the pipeline has decided to dead-letter
	// the delivery after the handler ran (its last attempt failed, its
	// error was permanent, or it was abandoned), before it does. It may
	// settle the failure another way, such as publishing a compensating
	// event, and then returns true: the delivery is acknowledged and its
	// outcome is [KindCompensated]. It returns false and nil when it has
	// nothing to do, and an error when compensating failed: the delivery
	// is then dead-lettered with both errors. cause is the handler's error.
	Compensate(d *Delivery, cause error) (bool, error)
	// Settled is told the outcome of each attempt once the pipeline has
	// settled it with the broker (for an in-place retry, before it waits).
	// It must not block for long: the consumer's worker waits for it.
	Settled(d *Delivery, o Outcome)
}

// PipelineConfig ties a [Pipeline] to its consumer.
type PipelineConfig struct {
	// Context is the handlers' context. The consumer cancels it when it
	// stops hard (Consumer.Stop's context ended); attempts that fail then
	// are interrupted, not retried or dead-lettered. Required.
	Context context.Context
	// Stopping is closed when the consumer begins to stop. A delivery
	// waiting for an in-place retry, or for its dead letter to be stored
	// again, is then handed back to the broker at once. Required.
	Stopping <-chan struct{}
	// Logger receives dead letters (warn), deliveries that could not be
	// settled (warn) and dead letters that could not be stored (error).
	// Default slog.Default().
	Logger *slog.Logger
}

// Pipeline takes each delivery of one subscription through the steps every
// transport shares, in this order: a message that cannot be read, is
// larger than the subscription accepts, or whose ce-type names another
// topic is dead-lettered without reaching the handler; one delivered after
// its last attempt is handed to the handler as abandoned; the handler runs
// (a panic is an error, with its stack); the outcome is decided once
// ([Decide], then the handler's compensation); an ordered subscription
// retries in place; the outcome is settled through the driver's [Settler]
// and told to the delivery's [Hooks]. Drivers differ only in how they
// receive and settle messages. It is safe for concurrent use.
type Pipeline[M any] struct {
	sub      Subscription
	name     string
	h        Handler
	s        Settler[M]
	ctx      context.Context
	stopping <-chan struct{}
	log      *slog.Logger
}

// NewPipeline returns the pipeline of one consumer of sub (its defaults
// filled in), calling h for each delivery and settling through s.
func NewPipeline[M any](sub Subscription, h Handler, s Settler[M], cfg PipelineConfig) *Pipeline[M] {
	sub = sub.WithDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Pipeline[M]{sub: sub, name: sub.String(), h: h, s: s, ctx: cfg.Context, stopping: cfg.Stopping, log: log}
}

// Deliver takes one delivery of m through the pipeline and returns, once
// it is settled, its outcome (the last attempt's, after in-place retries).
// d is the delivery as the driver read it: its Message, Subscription,
// Attempt (counting this one, from 1) and Replays. readErr is why its
// CloudEvents attributes could not be read, or nil. first is when the
// message's first attempt began, where the transport knows it (zero: now).
func (p *Pipeline[M]) Deliver(m M, d *Delivery, readErr error, first time.Time) Outcome {
	now := time.Now()
	if first.IsZero() {
		first = now
	}
	if out, ok := p.admit(d, readErr); !ok {
		// Never handled: count only the attempts before this delivery.
		out.Began = now
		return p.settle(m, d, out, first, d.Attempt-1)
	}
	if limit := p.sub.Retry.MaxAttempts; d.Attempt > limit {
		d.Abandoned = fmt.Errorf("delivered %d times, limit %d: a consumer stopped or died during the last attempt", d.Attempt, limit)
	}
	out := p.attempt(m, d)
	// An ordered subscription retries in place, so the events behind this
	// one with its key wait for it.
	for p.sub.Ordered && out.Action == ActRetry && !out.Interrupted {
		out.InPlace = true
		p.tell(d, out)
		if !p.wait(out.Delay) {
			// Stopping between in-place attempts: back to the broker at
			// once, so that it comes before the later events of its key.
			// The attempt's outcome was told already.
			p.settled("retry", p.s.Retry(m, d.Attempt+1, 0, first))
			return out
		}
		d.Attempt++
		out = p.attempt(m, d)
	}
	attempts := d.Attempt
	if d.Abandoned != nil {
		attempts-- // the abandoned delivery itself was not an attempt
	}
	return p.settle(m, d, out, first, attempts)
}

// admit checks what the transport can check before the handler: that the
// message could be read, fits the subscription's limit and belongs to its
// topic. ok is false, with a dead-letter outcome, when it does not.
func (p *Pipeline[M]) admit(d *Delivery, readErr error) (out Outcome, ok bool) {
	switch {
	case readErr != nil:
		return Outcome{Action: ActDeadLetter, Reason: ReasonMalformed, Err: readErr}, false
	case len(d.Data) > p.sub.MaxMessageBytes:
		return Outcome{Action: ActDeadLetter, Reason: ReasonOversized,
			Err: fmt.Errorf("%w: %d bytes, subscription accepts %d", ErrTooLarge, len(d.Data), p.sub.MaxMessageBytes)}, false
	}
	if topic, _, err := ParseType(d.Type); err != nil {
		return Outcome{Action: ActDeadLetter, Reason: ReasonMalformed, Err: err}, false
	} else if topic != p.sub.Topic {
		return Outcome{Action: ActDeadLetter, Reason: ReasonMisrouted,
			Err: fmt.Errorf("ce-type %q names topic %q, but it was delivered to subscription %s of topic %q", d.Type, topic, p.name, p.sub.Topic)}, false
	}
	return Outcome{}, true
}

// attempt runs the handler once and decides the outcome.
func (p *Pipeline[M]) attempt(m M, d *Delivery) Outcome {
	d.hooks = nil
	began := time.Now()
	err := p.call(d)
	took := time.Since(began)
	out := p.decide(m, d, err)
	out.Began, out.Took = began, took
	return out
}

// call runs the handler, turning a panic into an error that carries the
// stack. It is the one place a handler's panic is recovered.
func (p *Pipeline[M]) call(d *Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return p.h(p.ctx, d)
}

// decide is the one place an attempt's outcome is decided.
func (p *Pipeline[M]) decide(m M, d *Delivery, err error) Outcome {
	switch {
	case !p.s.Held(m):
		// The broker took it back while the handler ran and delivers it
		// again: settling it now would make a second copy.
		return Outcome{Action: ActRetry, Interrupted: true, Err: err}
	case err != nil && p.ctx.Err() != nil:
		// Cut off by a hard stop: not the handler's failure to count.
		return Outcome{Action: ActRetry, Interrupted: true, Err: err}
	}
	out := Decide(err, d.Attempt, p.sub.Retry, rand.Float64())
	if out.Action != ActDeadLetter {
		return out
	}
	if d.Abandoned != nil {
		out.Reason = ReasonAbandoned
	}
	if d.hooks == nil {
		return out
	}
	done, cerr := d.hooks.Compensate(d, err)
	switch {
	case cerr != nil:
		out.Err = fmt.Errorf("%w (and compensating failed: %v)", err, cerr)
	case done:
		return Outcome{Action: ActAck, Compensated: true, Err: err}
	}
	return out
}

// settle carries out the outcome with the broker, tells the hooks, and
// returns the outcome as it was carried out. attempts is what a dead
// letter records as attempts made.
func (p *Pipeline[M]) settle(m M, d *Delivery, out Outcome, first time.Time, attempts int) Outcome {
	switch {
	case !p.s.Held(m):
		out = Outcome{Action: ActRetry, Interrupted: true, Err: out.Err, Began: out.Began, Took: out.Took}
	case out.Action == ActAck:
		p.settled("ack", p.s.Ack(m))
	case out.Action == ActRetry:
		p.settled("retry", p.s.Retry(m, d.Attempt+1, out.Delay, first))
	default:
		out = p.deadLetter(m, d, out, first, attempts)
	}
	p.tell(d, out)
	return out
}

// deadLetter stores the delivery's dead letter and only then removes it
// from the subscription. A dead letter the broker does not take is tried
// again, the delivery held (its lease renewed by the driver), until it is
// stored or the consumer stops; then the delivery goes back to the broker,
// so it is never lost.
func (p *Pipeline[M]) deadLetter(m M, d *Delivery, out Outcome, first time.Time, attempts int) Outcome {
	cause := out.Err
	switch out.Reason {
	case ReasonFailed:
		cause = fmt.Errorf("attempt %d of %d: %w", d.Attempt, p.sub.Retry.MaxAttempts, out.Err)
	case ReasonAbandoned:
		if d.Abandoned != nil && !errors.Is(out.Err, d.Abandoned) {
			cause = d.Abandoned
		}
	}
	dl := &DeadLetter{
		Message: d.Message, Subscription: d.Subscription, Reason: out.Reason, Error: ErrorText(cause),
		Attempts: max(attempts, 0), Replays: d.Replays, FirstAttempt: first, LastAttempt: out.Began,
	}
	wait := deadLetterRetryMin
	for tries := 1; ; tries++ {
		dl.DeadAt = time.Now()
		err := p.s.StoreDeadLetter(m, dl)
		if err == nil {
			break
		}
		if errors.Is(err, ErrClosed) {
			// The connection is gone, and with it the delivery: the broker
			// delivers it again.
			return Outcome{Action: ActRetry, Interrupted: true, Err: out.Err, Began: out.Began, Took: out.Took}
		}
		if tries == 1 || tries%10 == 0 {
			p.log.Error("troupe: could not store dead letter; keeping the delivery and trying again",
				"subscription", p.name, "id", d.ID, "tries", tries, "err", err)
		}
		if !p.wait(wait) || !p.s.Held(m) {
			if p.s.Held(m) {
				p.settled("retry", p.s.Retry(m, d.Attempt+1, 0, first))
			}
			return Outcome{Action: ActRetry, Interrupted: true, Err: out.Err, Began: out.Began, Took: out.Took}
		}
		wait = min(2*wait, deadLetterRetryMax)
	}
	p.log.Warn("troupe: dead-lettered", "subscription", p.name, "id", d.ID,
		"type", d.Type, "reason", out.Reason, "attempts", dl.Attempts, "err", dl.Error)
	p.settled("terminate", p.s.Terminate(m))
	return out
}

// Bounds of the wait between two tries at storing a dead letter.
const (
	deadLetterRetryMin = 100 * time.Millisecond
	deadLetterRetryMax = 5 * time.Second
)

// wait waits d; false when the consumer began to stop or stopped hard
// first.
func (p *Pipeline[M]) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		select {
		case <-p.stopping:
			return false
		default:
			return p.ctx.Err() == nil
		}
	case <-p.stopping:
		return false
	case <-p.ctx.Done():
		return false
	}
}

// tell hands the outcome to the hooks the handler registered.
func (p *Pipeline[M]) tell(d *Delivery, out Outcome) {
	if d.hooks != nil {
		d.hooks.Settled(d, out)
	}
}

// settled logs a failure to settle, unless the connection is gone (the
// broker then redelivers on its own).
func (p *Pipeline[M]) settled(what string, err error) {
	if err != nil && !errors.Is(err, ErrClosed) {
		p.log.Warn("troupe: could not settle delivery; the broker will redeliver it",
			"subscription", p.name, "action", what, "err", err)
	}
}
