package outbox_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

// A delayed event is not published before the outbox's clock reaches its
// time, survives a restart of the process (a new app and outbox on the
// same database), and is published once the time comes.
func TestDelayedEventWaitsAndSurvivesRestart(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		eachDB(t, func(t *testing.T, d database) {
			clock := troupetest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
			// run starts a process: an app whose audit subscription counts
			// notes one at a time, and an outbox on d.
			run := func() (*troupe.App, *outbox.Outbox, *counter) {
				app := newApp(t, b, "")
				app.Service("orders").Publishes(noteTopic)
				got := newCounter()
				troupe.Subscribe(app.Service("audit"), noteTopic, "log", func(ctx context.Context, ev troupe.Event[Note]) error {
					got.add(strconv.Itoa(ev.Data.N))
					return nil
				}, troupe.Concurrency(1))
				ob := newOutbox(t, d, outbox.Options{Clock: clock})
				outbox.Attach(app, ob)
				troupetest.Start(t, app)
				return app, ob, got
			}
			app, ob, got := run()
			ctx := app.Context(t.Context())
			if err := outbox.PublishAfter(ctx, time.Hour, noteTopic, Note{N: 1}); err != nil {
				t.Fatal(err)
			}
			// An immediate event written after the delayed one: the relay
			// reads in id order, so had it taken the delayed event for due,
			// the one-at-a-time subscriber would have seen it first.
			if err := outbox.PublishAt(ctx, clock.Now(), noteTopic, Note{N: 2}); err != nil {
				t.Fatal(err)
			}
			got.waitFor(t, "the immediate event", func(m map[string]int, _ int) bool { return m["2"] == 1 })
			if m, _ := got.snapshot(); m["1"] != 0 {
				t.Fatal("the delayed event was published before its time")
			}
			waitPending(t, ob, 1)

			// Restart: stop this process, start another on the same table,
			// 59 minutes later.
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := app.Stop(stopCtx); err != nil {
				t.Fatal(err)
			}
			clock.Advance(59 * time.Minute)
			app, ob, got = run()
			ctx = app.Context(t.Context())
			if err := outbox.PublishAt(ctx, time.Time{}, noteTopic, Note{N: 3}); err != nil {
				t.Fatal(err)
			}
			got.waitFor(t, "an immediate event after the restart", func(m map[string]int, _ int) bool { return m["3"] == 1 })
			if m, _ := got.snapshot(); m["1"] != 0 {
				t.Fatal("the delayed event was published a minute early")
			}
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := clock.WaitTimers(wctx, 1); err != nil { // the relay waits for the delayed event
				t.Fatal(err)
			}
			clock.Advance(time.Minute)
			got.waitFor(t, "the delayed event once due", func(m map[string]int, _ int) bool { return m["1"] == 1 })
			waitPending(t, ob, 0)
		})
	})
}
