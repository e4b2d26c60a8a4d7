package troupe

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// CircuitBreaker pauses the subscription in this process after failures
// consecutive failed attempts (errors other than [Permanent] ones, which
// say nothing about a dependency being down), so that a broken dependency
// is not hammered and events do not burn their attempts against it. While
// the breaker is open the subscription's events wait in the process,
// unacknowledged and with their leases renewed, so nothing is lost and
// other processes may still take events the broker has not handed out.
// After cooldown one event is let through as a probe: if it succeeds the
// breaker closes and the waiting events proceed; if it fails the breaker
// opens again for twice the previous cooldown, up to 16 times cooldown.
//
// Events waiting when the app stops are handed back to the broker as
// failed attempts, delayed by the remaining cooldown. Default: no breaker.
// failures < 1 or cooldown <= 0 disables it.
func CircuitBreaker(failures int, cooldown time.Duration) SubscribeOption {
	return func(c *subscribeConfig) {
		if failures < 1 || cooldown <= 0 {
			c.breaker = nil
			return
		}
		c.breaker = &breakerConfig{failures: failures, cooldown: cooldown}
	}
}

type breakerConfig struct {
	failures int
	cooldown time.Duration
}

// BreakerState is the state of a subscription's circuit breaker.
type BreakerState int

// Breaker states.
const (
	BreakerClosed   BreakerState = iota // events are handled
	BreakerOpen                         // events wait for the cooldown
	BreakerHalfOpen                     // one probe event runs, the others wait
)

// String returns "closed", "open" or "half-open".
func (s BreakerState) String() string {
	switch s {
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// breaker is one subscription's circuit breaker in this process.
type breaker struct {
	cfg  breakerConfig
	app  *App // for its logger, which App.Main may set after Subscribe
	name string
	stop <-chan struct{} // closed when the app stops

	mu       sync.Mutex
	state    BreakerState
	fails    int           // consecutive failures while closed
	until    time.Time     // end of the open period
	cooldown time.Duration // current cooldown
	probing  bool          // a probe is running
	changed  chan struct{} // closed and replaced at each state change
}

func newBreaker(cfg breakerConfig, name string, app *App, stop <-chan struct{}) *breaker {
	return &breaker{cfg: cfg, name: name, app: app, stop: stop, cooldown: cfg.cooldown, changed: make(chan struct{})}
}

func (b *breaker) log() *slog.Logger { return b.app.Logger() }

// State returns the breaker's current state.
func (b *breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// enter waits until the event may run. probe reports whether it runs as
// the half-open probe. It fails when ctx ends or the app stops.
func (b *breaker) enter(ctx context.Context) (probe bool, err error) {
	for {
		b.mu.Lock()
		switch {
		case b.state == BreakerClosed:
			b.mu.Unlock()
			return false, nil
		case b.state == BreakerOpen && !time.Now().Before(b.until):
			b.setLocked(BreakerHalfOpen)
			fallthrough
		case b.state == BreakerHalfOpen && !b.probing:
			b.probing = true
			b.mu.Unlock()
			return true, nil
		}
		changed, wait := b.changed, time.Until(b.until)
		b.mu.Unlock()
		if err := b.wait(ctx, changed, wait); err != nil {
			return false, err
		}
	}
}

// wait returns when the state changes, after d (if positive), or with an
// error when ctx ends or the app stops.
func (b *breaker) wait(ctx context.Context, changed <-chan struct{}, d time.Duration) error {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-changed:
	case <-timer:
	case <-ctx.Done():
		return b.interrupted(ctx.Err())
	case <-b.stop:
		return b.interrupted(ErrNotStarted)
	}
	return nil
}

func (b *breaker) interrupted(cause error) error {
	b.mu.Lock()
	wait := max(time.Until(b.until), 0)
	b.mu.Unlock()
	return RetryAfter(wait, fmt.Errorf("circuit breaker of %s open, event handed back: %w", b.name, cause))
}

// done records the outcome of an attempt that enter let through. An
// attempt aborted by the app stopping decides nothing.
func (b *breaker) done(probe bool, err error, aborted bool) {
	failed := err != nil && !IsPermanent(err)
	b.mu.Lock()
	defer b.mu.Unlock()
	if aborted {
		if probe {
			b.probing = false
			b.setLocked(b.state) // wake a waiter to probe again
		}
		return
	}
	if probe {
		b.probing = false
		if failed {
			b.cooldown = min(2*b.cooldown, 16*b.cfg.cooldown)
			b.openLocked(err)
			return
		}
		b.cooldown, b.fails = b.cfg.cooldown, 0
		b.setLocked(BreakerClosed)
		b.log().Info("circuit breaker closed", "subscription", b.name)
		return
	}
	if !failed {
		b.fails = 0
		return
	}
	if b.state != BreakerClosed {
		return // the attempt began before the breaker opened
	}
	b.fails++
	if b.fails >= b.cfg.failures {
		b.openLocked(err)
	}
}

func (b *breaker) openLocked(err error) {
	b.until = time.Now().Add(b.cooldown)
	b.fails = 0
	b.setLocked(BreakerOpen)
	b.log().Warn("circuit breaker open: events wait", "subscription", b.name, "for", b.cooldown, "err", err)
}

func (b *breaker) setLocked(s BreakerState) {
	b.state = s
	close(b.changed)
	b.changed = make(chan struct{})
}
