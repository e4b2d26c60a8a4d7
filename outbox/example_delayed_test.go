package outbox_test

import (
	"context"
	"fmt"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

type ReminderV1 struct {
	OrderID string `json:"order_id"`
}

var PaymentReminder = troupe.NewTopic[ReminderV1]("payment_reminder", 1)

// A reminder published for a day later waits in the outbox table (so it
// survives restarts) and goes out when the day has passed. A fake clock
// stands in for the day.
func ExamplePublishAfter() {
	db, app, cleanup := exampleEnv("reminders")
	defer cleanup()
	clock := troupetest.NewClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	ob, err := outbox.New(db, outbox.Options{Clock: clock})
	if err != nil {
		panic(err)
	}
	app.Service("payment").Publishes(PaymentReminder)
	reminded := make(chan troupe.Event[ReminderV1], 1)
	troupe.Subscribe(app.Service("mail"), PaymentReminder, "remind",
		func(ctx context.Context, ev troupe.Event[ReminderV1]) error {
			reminded <- ev
			return nil
		})
	outbox.Attach(app, ob)
	if err := app.Start(context.Background()); err != nil {
		panic(err)
	}
	defer app.Stop(context.Background())

	ctx := app.Context(context.Background())
	if err := outbox.PublishAfter(ctx, 24*time.Hour, PaymentReminder, ReminderV1{OrderID: "7"}); err != nil {
		panic(err)
	}
	n, _ := ob.Pending(ctx)
	fmt.Println("waiting in the outbox:", n)

	_ = clock.WaitTimers(ctx, 1) // the relay waits for the reminder's time
	clock.Advance(24 * time.Hour)
	ev := <-reminded
	fmt.Println("reminder for order", ev.Data.OrderID, "at", clock.Now().Format("Jan 2 15:04"))
	// Output:
	// waiting in the outbox: 1
	// reminder for order 7 at Jan 6 09:00
}
