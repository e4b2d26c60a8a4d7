package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

type DigestDueV1 struct {
	Period string `json:"period"`
}

var DigestDue = troupe.NewTopic[DigestDueV1]("digest_due", 1)

// A daily digest at 08:00 Paris time: each period runs once however many
// instances run the schedule, and publishes through the outbox. A fake
// clock moves the day forward.
func ExampleOutbox_Schedule() {
	db, app, cleanup := exampleEnv("digests")
	defer cleanup()
	clock := troupetest.NewClock(time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC)) // 07:00 in Paris
	ob, err := outbox.New(db, outbox.Options{Clock: clock})
	if err != nil {
		panic(err)
	}
	err = ob.Schedule("daily-digest", "daily at 08:00 in Europe/Paris",
		func(ctx context.Context, tx *sql.Tx, tick outbox.Tick) error {
			return outbox.PublishTx(ctx, tx, DigestDue, DigestDueV1{Period: tick.Period.Format(time.RFC3339)})
		})
	if err != nil {
		panic(err)
	}
	app.Service("digest").Publishes(DigestDue)
	due := make(chan DigestDueV1, 4)
	troupe.Subscribe(app.Service("mail"), DigestDue, "send",
		func(ctx context.Context, ev troupe.Event[DigestDueV1]) error {
			due <- ev.Data
			return nil
		})
	outbox.Attach(app, ob)
	if err := app.Start(context.Background()); err != nil {
		panic(err)
	}
	defer app.Stop(context.Background())

	for range 2 {
		_ = clock.WaitTimers(context.Background(), 1) // the schedule waits for 08:00
		clock.Advance(24 * time.Hour)
		fmt.Println("digest for", (<-due).Period)
	}
	// Output:
	// digest for 2026-01-05T08:00:00+01:00
	// digest for 2026-01-06T08:00:00+01:00
}
