package troupe_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/troupe-go/troupe"
)

type UserRegistered struct {
	Email string `json:"email"`
}

type WelcomeMailSent struct {
	Email string `json:"email"`
}

var (
	userRegistered  = troupe.NewTopic[UserRegistered]("user_registered", 1)
	welcomeMailSent = troupe.NewTopic[WelcomeMailSent]("welcome_mail_sent", 1)
)

// A user service publishes user_registered; a mailer subscribes, sends the
// welcome mail and publishes welcome_mail_sent, which the user service
// watches. Everything runs on the embedded broker.
func Example() {
	dir, _ := os.MkdirTemp("", "troupe-example")
	defer os.RemoveAll(dir)

	app := troupe.New(troupe.Config{Name: "users", DataDir: dir, HTTPAddr: "off",
		Logger: slog.New(slog.DiscardHandler)})
	users := app.Service("users").Publishes(userRegistered)
	mailer := app.Service("mailer").Publishes(welcomeMailSent)

	troupe.Subscribe(mailer, userRegistered, "send-welcome",
		func(ctx context.Context, ev troupe.Event[UserRegistered]) error {
			fmt.Println("mailer: welcome mail to", ev.Data.Email)
			return troupe.Publish(ctx, welcomeMailSent, WelcomeMailSent{Email: ev.Data.Email})
		})
	done := make(chan troupe.Event[WelcomeMailSent])
	troupe.Subscribe(users, welcomeMailSent, "mark-welcomed",
		func(ctx context.Context, ev troupe.Event[WelcomeMailSent]) error {
			done <- ev
			return nil
		})

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer app.Stop(ctx)

	pctx := troupe.WithCorrelationID(app.Context(ctx), "signup-42")
	if err := troupe.Publish(pctx, userRegistered, UserRegistered{Email: "ada@example.com"}); err != nil {
		fmt.Println(err)
		return
	}
	ev := <-done
	fmt.Println("users: welcomed", ev.Data.Email, "in transaction", ev.CorrelationID)
	// Output:
	// mailer: welcome mail to ada@example.com
	// users: welcomed ada@example.com in transaction signup-42
}

// A handler that fails is retried by the broker with backoff; the event's
// Attempt counts the deliveries.
func ExampleMaxAttempts() {
	dir, _ := os.MkdirTemp("", "troupe-example")
	defer os.RemoveAll(dir)
	app := troupe.New(troupe.Config{Name: "retry", DataDir: dir, HTTPAddr: "off",
		Logger: slog.New(slog.DiscardHandler)})
	users := app.Service("users").Publishes(userRegistered)
	done := make(chan struct{})
	troupe.Subscribe(app.Service("mailer"), userRegistered, "send-welcome",
		func(ctx context.Context, ev troupe.Event[UserRegistered]) error {
			if ev.Attempt < 3 {
				fmt.Println("attempt", ev.Attempt, "fails: mail server down")
				return errors.New("mail server down")
			}
			fmt.Println("attempt", ev.Attempt, "sends the mail")
			close(done)
			return nil
		},
		troupe.MaxAttempts(5), troupe.Backoff(10*time.Millisecond, 100*time.Millisecond))
	_ = users

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer app.Stop(ctx)
	_ = troupe.Publish(app.Context(ctx), userRegistered, UserRegistered{Email: "ada@example.com"})
	<-done
	// Output:
	// attempt 1 fails: mail server down
	// attempt 2 fails: mail server down
	// attempt 3 sends the mail
}

// An error wrapped with Permanent is not retried: the event goes straight to
// the subscription's dead letters, where it can be inspected and replayed to
// that subscription alone.
func ExamplePermanent() {
	dir, _ := os.MkdirTemp("", "troupe-example")
	defer os.RemoveAll(dir)
	app := troupe.New(troupe.Config{Name: "perm", DataDir: dir, HTTPAddr: "off",
		Logger: slog.New(slog.DiscardHandler)})
	app.Service("users").Publishes(userRegistered)
	fixed := make(chan struct{})
	replayed := make(chan int)
	troupe.Subscribe(app.Service("mailer"), userRegistered, "send-welcome",
		func(ctx context.Context, ev troupe.Event[UserRegistered]) error {
			select {
			case <-fixed:
				replayed <- ev.Attempt
				return nil
			default:
				return troupe.Permanent(fmt.Errorf("address %q rejected", ev.Data.Email))
			}
		})

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer app.Stop(ctx)
	_ = troupe.Publish(app.Context(ctx), userRegistered, UserRegistered{Email: "ada@"})

	var dead []troupe.DeadLetter
	for len(dead) == 0 {
		dead, _ = app.DeadLetters(ctx, "mailer.send-welcome", 0)
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println(dead[0].Reason, "after", dead[0].Attempts, "attempt:", dead[0].Error)

	close(fixed) // the bug is fixed: replay the event to the mailer only
	if err := app.Replay(ctx, "mailer.send-welcome", dead[0].ID); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("replayed; handled again as attempt", <-replayed)
	// Output:
	// permanent after 1 attempt: permanent: address "ada@" rejected
	// replayed; handled again as attempt 1
}
