package troupe

import (
	"context"
	"sync"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// attemptCtx is the context of one handler attempt: the delivery's context,
// the attempt's deadline and the scope Publish reads, in one allocation.
//
// It does what context.WithTimeout followed by context.WithValue does, but
// lazily: most handlers never wait on their context, so the channel, the
// timer and the link to the parent are only made when something asks for
// Done. Err compares the clock with the deadline until then. end, which
// the attempt's caller defers, cancels it like WithTimeout's cancel.
type attemptCtx struct {
	parent   context.Context
	deadline time.Time
	scope    scope
	event    any  // the Event[T] handled, kept for a compensation
	started  bool // the handler's path began using it

	mu         sync.Mutex
	done       chan struct{} // made by the first Done or AfterFunc
	err        error         // set once, when the context ends
	timer      *time.Timer
	stopParent func() bool
	after      map[*func()]struct{} // AfterFunc callbacks still to run
}

func newAttemptCtx(parent context.Context, d time.Duration) *attemptCtx {
	c := &attemptCtx{parent: parent}
	c.arm(d)
	return c
}

// arm starts the attempt's deadline: d from now, or the parent's if that
// comes first. It is called before the context is handed out.
func (c *attemptCtx) arm(d time.Duration) {
	c.deadline = time.Now().Add(d)
	if pd, ok := c.parent.Deadline(); ok && pd.Before(c.deadline) {
		c.deadline = pd
	}
}

func (c *attemptCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *attemptCtx) Value(key any) any {
	if key == (scopeKey{}) {
		return &c.scope
	}
	return c.parent.Value(key)
}

func (c *attemptCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watch()
	return c.done
}

// watch makes the Done channel and, unless the context has ended already,
// the timer and the parent link that end it. c.mu must be held.
func (c *attemptCtx) watch() {
	if c.done != nil {
		return
	}
	c.done = make(chan struct{})
	if c.err == nil {
		c.err = c.expired()
	}
	if c.err != nil {
		close(c.done)
		return
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	c.stopParent = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
}

// AfterFunc runs f in its own goroutine once the context ends, and stop
// keeps it from running if it has not yet. The context package uses it, when
// a context has it, to make contexts derived from this one (with
// context.WithTimeout in a handler, say) follow it without a goroutine of
// their own waiting on Done, as they follow the standard contexts.
func (c *attemptCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watch()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	key := &f
	if c.after == nil {
		c.after = make(map[*func()]struct{})
	}
	c.after[key] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, waiting := c.after[key]
		delete(c.after, key)
		return waiting
	}
}

func (c *attemptCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.done == nil {
		// Without a Done channel nothing watches the clock or the parent.
		c.err = c.expired()
	}
	return c.err
}

// expired reports why the context has ended without anyone cancelling it:
// the parent ended, or the deadline passed. c.mu must be held.
func (c *attemptCtx) expired() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// cancel ends the context with err unless it has ended already.
func (c *attemptCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	for f := range c.after {
		go (*f)()
	}
	c.after = nil
	if c.done != nil {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
}

// end cancels the context once the attempt is over, as the cancel function
// of context.WithTimeout does, so goroutines the handler left behind see it
// end.
func (c *attemptCtx) end() { c.cancel(context.Canceled) }

func (c *attemptCtx) String() string { return "troupe.attemptCtx" }

// Compensate implements [transport.Hooks]: when the pipeline has decided
// to dead-letter the event and its subscription declares [OnFailure], it
// publishes the failure event instead. Events that could not be decoded
// have nothing to build one from and are dead-lettered.
func (c *attemptCtx) Compensate(_ *transport.Delivery, cause error) (bool, error) {
	sub := c.scope.sub
	if sub.cfg.compensate == nil || c.event == nil {
		return false, nil
	}
	if err := sub.service.app.compensate(c.parent, sub, c.event, c.scope.ev, cause); err != nil {
		return false, err
	}
	return true, nil
}

// Settled implements [transport.Hooks]: it logs the outcome the pipeline
// decided and tells the Settled middlewares, in the context the handler
// ran in.
func (c *attemptCtx) Settled(d *transport.Delivery, o transport.Outcome) {
	sub := c.scope.sub
	sub.service.app.logSettled(sub, d, o)
	if len(sub.settled) == 0 {
		return
	}
	st := Settlement{
		Subscription: sub, Delivery: d, Outcome: o.Kind(), Err: o.Err, Delay: o.Delay, InPlace: o.InPlace,
		Reason: o.Reason, Began: o.Began, Took: o.Took,
	}
	for _, f := range sub.settled {
		f(c.parent, st)
	}
}
