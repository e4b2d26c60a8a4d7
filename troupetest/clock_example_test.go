package troupetest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/troupe-go/troupe/troupetest"
)

// A fake clock drives code that waits: the goroutine below waits for an
// hour of the clock's time, which passes when the test advances it.
func ExampleClock() {
	clock := troupetest.NewClock(time.Date(2026, 1, 5, 7, 0, 0, 0, time.UTC))
	fired := make(chan time.Time)
	go func() { fired <- <-clock.After(time.Hour) }()

	_ = clock.WaitTimers(context.Background(), 1) // the goroutine is waiting
	clock.Advance(30 * time.Minute)
	fmt.Println("after 30 minutes, timers waiting:", clock.Timers())
	clock.Advance(30 * time.Minute)
	fmt.Println("fired at", (<-fired).Format("15:04"))
	// Output:
	// after 30 minutes, timers waiting: 1
	// fired at 08:00
}
