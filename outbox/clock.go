package outbox

import "time"

// Clock tells the time for delayed events and schedules. The system clock
// is the default; tests pass a troupetest.Clock, whose time moves only
// when the test advances it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a channel that receives a time once d has passed
	// on this clock, and a function that stops the timer (reporting
	// whether it had not fired yet).
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
