package troupetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
)

// Observer sees every event published to one topic of a running app, from
// the topic's beginning, so a test can wait until a business transaction
// reaches that topic. Create it with [Observe] before the app starts.
type Observer[T any] struct {
	// Timeout bounds each Wait. Default (zero): [DefaultTimeout].
	Timeout time.Duration

	topic   string
	mu      sync.Mutex
	events  []troupe.Event[T]
	changed chan struct{} // closed and replaced when an event arrives
}

var observers atomic.Int64

// Observe declares, in app, a hidden service "troupetest-observerN" with
// one subscription "observe" to topic, and returns the Observer that its
// handler feeds. Call it before the app starts: the subscription is
// declared and consumed at start. It reads the topic from its beginning
// (troupe.StartAtBeginning), so events published before the observer runs
// are seen too, and one at a time, so [Observer.Events] keeps the topic's
// order.
//
// The observer is part of the app under test: it shows in App.Services and
// in the app's topology, and it takes its own copy of each event, so it
// never takes events from the app's own subscriptions. The hidden service
// must run in the process: leave Config.Services empty, or list it. On a
// shared broker its subscription outlives the test; the temporary data dir
// of [Config] avoids that.
//
// Observe fails the test when app has already started. A topic that no
// service publishes and that App.Topics does not declare makes the app's
// start fail, as any such subscription does.
func Observe[T any](t testing.TB, app *troupe.App, topic *troupe.Topic[T]) *Observer[T] {
	t.Helper()
	if app.Transport() != nil {
		t.Fatalf("troupetest: Observe(%s) after app %s started: call it before Start", topic, app.Name())
	}
	o := &Observer[T]{topic: topic.Type(), changed: make(chan struct{})}
	svc := app.Service(fmt.Sprintf("troupetest-observer%d", observers.Add(1)))
	troupe.Subscribe(svc, topic, "observe", o.record, troupe.StartAtBeginning(), troupe.Concurrency(1))
	return o
}

func (o *Observer[T]) record(_ context.Context, ev troupe.Event[T]) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
	close(o.changed)
	o.changed = make(chan struct{})
	return nil
}

// Events returns the events observed so far, in the topic's order. At-least-
// once delivery means an event may show twice, under one ID.
func (o *Observer[T]) Events() []troupe.Event[T] {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]troupe.Event[T](nil), o.events...)
}

// Wait returns the first observed event for which match returns true,
// waiting for it until the Observer's Timeout. If none comes, it fails the
// test and says which events did come. match runs on the test's goroutine
// and must not block.
func (o *Observer[T]) Wait(t testing.TB, match func(troupe.Event[T]) bool) troupe.Event[T] {
	t.Helper()
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	seen := 0
	for {
		o.mu.Lock()
		evs, changed := o.events[seen:], o.changed
		o.mu.Unlock()
		for _, ev := range evs {
			if match(ev) {
				return ev
			}
		}
		seen += len(evs)
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("troupetest: no matching %s event within %s; observed %d: %s", o.topic, timeout, seen, o.summary())
			return troupe.Event[T]{}
		}
	}
}

// WaitCorrelation waits as [Observer.Wait] for the event of the business
// transaction correlationID, such as the id given to troupe.WithCorrelationID
// where the transaction started.
func (o *Observer[T]) WaitCorrelation(t testing.TB, correlationID string) troupe.Event[T] {
	t.Helper()
	return o.Wait(t, func(ev troupe.Event[T]) bool { return ev.CorrelationID == correlationID })
}

// summary lists the last few observed events for a failure message.
func (o *Observer[T]) summary() string {
	evs := o.Events()
	if len(evs) == 0 {
		return "none (was anything published to it? is the topic's publisher running?)"
	}
	var b strings.Builder
	from := max(0, len(evs)-5)
	if from > 0 {
		fmt.Fprintf(&b, "…, ")
	}
	for i, ev := range evs[from:] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{id %s correlation %s data %+v}", ev.ID, ev.CorrelationID, ev.Data)
	}
	return b.String()
}
