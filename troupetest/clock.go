package troupetest

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Clock is a fake clock for tests of code that waits for a time of day or
// a delay, such as outbox schedules and delayed events. Its time moves
// only when the test calls [Clock.Advance] or [Clock.Set]; timers made by
// [Clock.After] fire then, in the order of their deadlines. It is safe for
// concurrent use.
//
// It satisfies outbox.Clock, so a test hands it to outbox.Options.Clock
// and drives a schedule a day at a time:
//
//	clock := troupetest.NewClock(time.Date(2026, 1, 5, 7, 0, 0, 0, time.UTC))
//	ob, _ := outbox.New(db, outbox.Options{Clock: clock})
//	...
//	clock.WaitTimers(ctx, 1)   // the scheduler waits on the clock
//	clock.Advance(time.Hour)   // 08:00: the daily schedule fires
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced whenever timers change
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

// NewClock returns a clock that reads start until it is advanced.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once the clock
// has been advanced by at least d. A d of zero or less fires at once. The
// channel has room for its one value, so a timer nobody reads never blocks
// Advance. The timer counts in [Clock.Timers] until it fires; use
// [Clock.NewTimer] for one that can be stopped.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	ch, _ := c.NewTimer(d)
	return ch
}

// NewTimer is [Clock.After] with a stop function, which removes the timer
// and reports whether it had not fired yet. It has the shape of
// outbox.Clock's NewTimer.
func (c *Clock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch, func() bool { return false }
	}
	tm := &fakeTimer{at: c.now.Add(d), ch: ch}
	c.timers = append(c.timers, tm)
	c.notifyLocked()
	return ch, func() bool { return c.stop(tm) }
}

func (c *Clock) stop(tm *fakeTimer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.timers {
		if x == tm {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			c.notifyLocked()
			return true
		}
	}
	return false
}

// Advance moves the clock forward by d and fires every timer whose
// deadline is reached, earliest first, each with its own deadline as the
// time it receives. A negative d panics: time does not run backwards.
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		panic("troupetest: Clock.Advance with a negative duration")
	}
	c.mu.Lock()
	c.setLocked(c.now.Add(d))
	c.mu.Unlock()
}

// Set moves the clock to t, as Advance(t.Sub(Now())) would. A t before the
// clock's time panics.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.now) {
		panic("troupetest: Clock.Set to a time before the clock's")
	}
	c.setLocked(t)
}

func (c *Clock) setLocked(t time.Time) {
	c.now = t
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	n := 0
	for _, tm := range c.timers {
		if tm.at.After(t) {
			break
		}
		tm.ch <- tm.at
		n++
	}
	if n > 0 {
		c.timers = append(c.timers[:0], c.timers[n:]...)
		c.notifyLocked()
	}
}

// Timers returns how many timers are waiting for the clock to advance.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitTimers blocks until at least n timers are waiting, so that a test
// advances the clock only once the code under test has started waiting on
// it. It fails with ctx's error if ctx ends first.
func (c *Clock) WaitTimers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		have, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Clock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}
