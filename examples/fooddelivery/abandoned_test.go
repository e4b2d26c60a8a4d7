//go:build unix

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/troupetest"
)

// TestAbandonedLastAttemptThatSucceeded shows, with troupe alone on
// RabbitMQ, why the simulated restaurant answers by its last attempt but
// one (restaurant.Decide): a handler with a compensation (troupe.OnFailure)
// publishes its success on its last attempt, and its process stops before
// the delivery is acknowledged. The broker hands the event to the next
// consumer, which finds the attempts used up and publishes the
// compensation without knowing that the attempt had succeeded: the order
// is both confirmed and cancelled (and refunded). Skipped: it fails
// against troupe as it is (see the lead's report).
func TestAbandonedLastAttemptThatSucceeded(t *testing.T) {
	t.Skip("troupe compensates an event whose last attempt died without knowing that the attempt succeeded: its success and its compensation both go out (reported to the lead)")
	url := rabbitBroker.url()
	if err := rabbitBroker.probe(url); err != nil {
		t.Skipf("no RabbitMQ at %s: %v", proctest.Redacted(url), err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "fdabandon_" + hex.EncodeToString(b)
	type asked struct{ ID string }
	type done struct{ ID string }
	type failed struct{ ID string }
	askedT := troupe.NewTopic[asked]("asked", 1)
	doneT := troupe.NewTopic[done]("done", 1)
	failedT := troupe.NewTopic[failed]("failed", 1)
	var dones, failures atomic.Int32
	published := make(chan struct{}, 1)
	release := make(chan struct{})
	declare := func(block bool) *troupe.App {
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: ns, Broker: url}))
		worker := app.Service("worker").Publishes(doneT, failedT)
		troupe.Subscribe(worker, askedT, "work", func(ctx context.Context, ev troupe.Event[asked]) error {
			if err := troupe.Publish(ctx, doneT, done(ev.Data)); err != nil {
				return err
			}
			if block {
				published <- struct{}{}
				<-release // the process "dies" here, before the acknowledgement
			}
			return nil
		}, troupe.Emits(doneT), troupe.MaxAttempts(1),
			troupe.OnFailure(failedT, func(ev troupe.Event[asked], _ error) failed { return failed(ev.Data) }))
		watch := app.Service("watch").Publishes(askedT)
		troupe.Subscribe(watch, doneT, "done", func(context.Context, troupe.Event[done]) error { dones.Add(1); return nil })
		troupe.Subscribe(watch, failedT, "failed", func(context.Context, troupe.Event[failed]) error { failures.Add(1); return nil })
		return app
	}
	t.Cleanup(func() {
		_ = withAMQPCleanup(url, ns, []string{"worker.work", "watch.done", "watch.failed"})
	})

	first := declare(true)
	if err := first.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := troupe.Publish(first.Context(t.Context()), askedT, asked{ID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	<-published
	// Stop without waiting for the handler: its delivery is never
	// acknowledged, as when the process is killed.
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	_ = first.Stop(stopped)
	close(release)

	second := declare(false)
	troupetest.Start(t, second)
	// The success is seen at once; the compensation, if it comes, within
	// moments of the second consumer's start.
	deadline := time.Now().Add(10 * time.Second)
	for (dones.Load() == 0 || failures.Load() == 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	if d, f := dones.Load(), failures.Load(); d != 1 || f != 0 {
		t.Errorf("%d success and %d compensation events for one event whose last attempt succeeded: want the success alone", d, f)
	}
}

// withAMQPCleanup deletes what the test declared on RabbitMQ.
func withAMQPCleanup(url, ns string, subs []string) error {
	if os.Getenv("TROUPE_KEEP") != "" {
		return nil
	}
	return rabbitBroker.cleanup(url, ns, subs)
}
