// Package users is the user service of the user-management example: it
// owns the users' table and the HTTP API, and publishes [Registered] and
// [Deleted] through its transactional outbox, so a user's row and the event
// that announces it commit together.
//
// Routes:
//
//	POST   /users       register a user: {"name":"Ada","email":"ada@example.com"}
//	                    202 Accepted at once, or with "Prefer: wait=N" 201 Created
//	                    once the welcome mail's outcome is known (up to N seconds)
//	GET    /users/{id}  a user
//	DELETE /users/{id}  delete a user; 204 No Content
//
// The service knows nothing of the services that react to its events: the
// mailer and the coupon service subscribe to them without this package
// importing theirs. The outcomes POST /users can wait for are passed in by
// the app ([Options.Outcomes]).
package users

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the user service's name in the app and on --services.
const ServiceName = "users"

// DefaultMaxWait bounds the wait that "Prefer: wait=N" may ask for.
const DefaultMaxWait = 30 * time.Second

// Options configure the user service. Every field has a default.
type Options struct {
	// Outcomes are the events that end a registration, as far as a client
	// that asked to wait is concerned (the welcome mail was sent, skipped or
	// failed). Default none: POST /users then always answers 202.
	Outcomes []Outcome
	// MaxWait caps the N of "Prefer: wait=N". Default [DefaultMaxWait].
	MaxWait time.Duration
	// Logger gets one line per user registered and deleted. Default: the
	// app's logger.
	Logger *slog.Logger
}

// Outcome names an event that ends a registration for a waiting client.
// Make one with [AwaitOutcome].
type Outcome struct {
	topic  troupe.AnyTopic
	status string
}

// AwaitOutcome declares that an event of t in a registration's business
// transaction (correlation id = the user's id) ends the wait of a POST
// /users that asked for it; the answer reports it as status ("sent").
func AwaitOutcome(t troupe.AnyTopic, status string) Outcome {
	return Outcome{topic: t, status: status}
}

// Register declares the user service on app: it publishes [Registered] and
// [Deleted] and serves the routes listed in the package doc. db is the
// service's database, where Register creates the users table and an outbox
// with the table prefix "users"; pass nil in a process that does not run
// the service, which then only declares it.
func Register(app *troupe.App, db *sql.DB, opts Options) (*troupe.Service, error) {
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.Logger == nil {
		opts.Logger = app.Logger()
	}
	svc := app.Service(ServiceName).Publishes(Registered, Deleted)
	a := &api{log: opts.Logger, maxWait: opts.MaxWait, await: newAwaiter(opts.Outcomes)}
	if db != nil {
		ob, err := outbox.New(db, outbox.Options{Prefix: "users"})
		if err != nil {
			return nil, fmt.Errorf("users: outbox: %w", err)
		}
		if err := createTable(context.Background(), db); err != nil {
			return nil, err
		}
		outbox.Attach(app, ob)
		a.db, a.ob = db, ob
	}
	svc.HandleFunc("POST /users", a.register)
	svc.HandleFunc("GET /users/{id}", a.get)
	svc.HandleFunc("DELETE /users/{id}", a.delete)
	svc.HandleFunc("/users", httpjson.Fallback("/users", "POST"))
	svc.HandleFunc("/users/{id}", httpjson.Fallback("/users/{id}", "GET", "DELETE"))
	return svc, nil
}

// createTable creates the users table if it is missing. Emails are unique:
// the same address cannot register twice while its user exists.
func createTable(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS users (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL,
		email      TEXT NOT NULL UNIQUE,
		created_at BIGINT NOT NULL
	)`)
	if err != nil {
		return fmt.Errorf("users: create table: %w", err)
	}
	return nil
}
