package troupetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

// ErrInjected is the error [FailFirst] returns when given a nil error.
var ErrInjected = errors.New("troupetest: injected failure")

// FailFirst wraps h so that the first n times each event (by ID) is handled
// fail with err, without calling h; later attempts call h. A nil err means
// [ErrInjected]; wrap it with troupe.Permanent to test the path that skips
// retries, or troupe.RetryAfter to steer the delay. A nil h succeeds.
//
// The count is kept per event id in memory, not read from the attempt
// number, so an event replayed from dead letters after n failures succeeds,
// and a handler with several subscriptions should be wrapped once per
// subscription. With n at least the subscription's MaxAttempts, each event
// ends in the dead letters.
func FailFirst[T any](n int, err error, h troupe.Handler[T]) troupe.Handler[T] {
	if err == nil {
		err = ErrInjected
	}
	var mu sync.Mutex
	calls := make(map[string]int)
	return func(ctx context.Context, ev troupe.Event[T]) error {
		mu.Lock()
		calls[ev.ID]++
		c := calls[ev.ID]
		mu.Unlock()
		if c <= n {
			return err
		}
		if h == nil {
			return nil
		}
		return h(ctx, ev)
	}
}

// DeadLetters waits until the subscription named "service.name" of a
// running app holds at least n dead letters, and returns all of them,
// oldest first. It polls the broker, and fails the test after
// [DefaultTimeout] with the count it saw, or at once for an error that
// waiting cannot fix (an unknown subscription, an app not started, an app
// on a [Recorder], which keeps no dead letters).
func DeadLetters(t testing.TB, app *troupe.App, subscription string, n int) []troupe.DeadLetter {
	t.Helper()
	if _, ok := app.Transport().(*Recorder); ok {
		t.Fatalf("troupetest: dead letters of %s: the app runs on a Recorder, which keeps none; read Result.Outcome of Deliver instead", subscription)
	}
	deadline := time.Now().Add(DefaultTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		dls, err := app.DeadLetters(ctx, subscription, 0)
		cancel()
		switch {
		case err != nil && (errors.Is(err, troupe.ErrNotStarted) || findSubscription(app, subscription) == nil):
			t.Fatalf("troupetest: dead letters of %s: %v", subscription, err)
		case err == nil && len(dls) >= n:
			return dls
		case time.Now().After(deadline):
			t.Fatalf("troupetest: %s has %d dead letters after %s, want %d (last error: %v)", subscription, len(dls), DefaultTimeout, n, err)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}
