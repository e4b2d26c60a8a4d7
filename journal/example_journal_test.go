package journal_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/journal"
)

type signup struct {
	Email string `json:"email"`
}

type welcomed struct {
	Email string `json:"email"`
}

var (
	signedUp = troupe.NewTopic[signup]("signed_up", 1)
	welcome  = troupe.NewTopic[welcomed]("welcomed", 1)
)

// A journal records every publish and every handling attempt; Trace reads
// one business transaction back as a causal tree.
func Example() {
	dir, _ := os.MkdirTemp("", "journal-example")
	defer os.RemoveAll(dir)
	app := troupe.New(troupe.Config{Name: "signup", DataDir: dir, HTTPAddr: "off", Logger: slog.New(slog.DiscardHandler)})
	app.Service("web").Publishes(signedUp)
	mail := app.Service("mail").Publishes(welcome)
	troupe.Subscribe(mail, signedUp, "send-welcome", func(ctx context.Context, ev troupe.Event[signup]) error {
		if ev.Attempt == 1 {
			return errors.New("smtp: connection refused")
		}
		return troupe.Publish(ctx, welcome, welcomed(ev.Data))
	}, troupe.Emits(welcome), troupe.Backoff(10*time.Millisecond, time.Second))

	journal.Install(app, journal.MaxAge(time.Hour))

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer app.Stop(ctx)
	if err := troupe.Publish(troupe.WithCorrelationID(app.Context(ctx), "signup-ada"), signedUp, signup{Email: "ada@example.com"}); err != nil {
		fmt.Println(err)
		return
	}

	// Entries are written in the background: wait for the last one.
	var entries []journal.Entry
	for deadline := time.Now().Add(10 * time.Second); len(entries) < 4 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		entries, _ = journal.Trace(ctx, app, "signup-ada")
	}
	for _, e := range entries {
		fmt.Printf("%s%s %s %s %s\n", strings.Repeat("  ", e.Depth), e.Kind, e.Type, e.Subscription, e.Outcome)
	}
	// Output:
	// publish signed_up.v1  published
	//   handle signed_up.v1 mail.send-welcome retried
	//   handle signed_up.v1 mail.send-welcome handled
	//     publish welcomed.v1 mail.send-welcome published
}
