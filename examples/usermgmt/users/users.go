// Package users is the user service of the user-management example: it
// owns the users' table and the HTTP API, and publishes [Registered] and
// [Deleted] through its transactional outbox, so a user's row and the event
// that announces it commit together.
//
// Routes:
//
//	POST   /users       register a user: {"name":"Ada","email":"ada@example.com"}
//	                    202 Accepted at once, or with "Prefer: wait=N" 201 Created
//	                    once the welcome mail's outcome is known (up to N seconds);
//	                    header Idempotency-Key optional
//	GET    /users       the registrations: count, by_status, terminal, stuck, and the newest
//	GET    /users/{id}  a user, with the status of its registration
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
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the user service's name in the app and on --services.
const ServiceName = "users"

// DefaultMaxWait bounds the wait that "Prefer: wait=N" may ask for.
const DefaultMaxWait = 30 * time.Second

// StatusPending is a registration's status until an outcome arrives. It
// is not terminal; the outcomes ([AwaitOutcome]) are.
const StatusPending = "pending"

// Options configure the user service. Every field has a default.
type Options struct {
	// Outcomes are the events that end a registration (the welcome mail
	// was sent, skipped or failed): the service records the first that
	// arrives as the registration's status, shown by GET /users/{id} and
	// counted by GET /users, and a POST /users that asked to wait returns
	// with it. Default none: registrations then stay pending, and POST
	// /users always answers 202.
	Outcomes []Outcome
	// MaxWait caps the N of "Prefer: wait=N". Default [DefaultMaxWait].
	MaxWait time.Duration
	// Logger gets one line per user registered and deleted. Default: the
	// app's logger.
	Logger *slog.Logger
}

// Outcome names an event that ends a registration. Make one with
// [AwaitOutcome].
type Outcome struct {
	topic     troupe.AnyTopic
	status    string
	subscribe func(svc *troupe.Service, ob *outbox.Outbox, record func(ctx context.Context, tx *sql.Tx, env troupe.Envelope, status string) error)
}

// AwaitOutcome declares that an event of t in a registration's business
// transaction (correlation id = the user's id) ends the registration with
// status ("sent"): the user service subscribes to t (as "record-<status>")
// to record it, and a POST /users that asked to wait returns with it.
func AwaitOutcome[T any](t *troupe.Topic[T], status string) Outcome {
	return Outcome{topic: t, status: status,
		subscribe: func(svc *troupe.Service, ob *outbox.Outbox, record func(context.Context, *sql.Tx, troupe.Envelope, string) error) {
			outbox.Subscribe(svc, t, "record-"+status, ob, func(ctx context.Context, tx *sql.Tx, ev troupe.Event[T]) error {
				return record(ctx, tx, ev.Envelope, status)
			})
		}}
}

var schema = []string{
	// Emails are unique: the same address cannot register twice while its
	// user exists.
	`CREATE TABLE IF NOT EXISTS users (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL,
		email      TEXT NOT NULL UNIQUE,
		created_at BIGINT NOT NULL
	)`,
	// One row per registration, kept when the user is deleted: its status
	// is pending until the first outcome event, then that outcome's.
	`CREATE TABLE IF NOT EXISTS users_registrations (
		user_id       TEXT PRIMARY KEY,
		name          TEXT NOT NULL,
		email         TEXT NOT NULL,
		status        TEXT NOT NULL,
		outcome_event TEXT NOT NULL DEFAULT '',
		registered_at BIGINT NOT NULL,
		ended_at      BIGINT NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX IF NOT EXISTS users_registrations_by_status ON users_registrations (status)`,
	`CREATE INDEX IF NOT EXISTS users_registrations_by_time ON users_registrations (registered_at)`,
	// The Idempotency-Key of each POST /users that sent one, and the user
	// it made: a retried request is answered with that user.
	`CREATE TABLE IF NOT EXISTS users_idempotency (
		idem_key   TEXT PRIMARY KEY,
		user_id    TEXT NOT NULL,
		created_at BIGINT NOT NULL
	)`,
}

// Register declares the user service on app: it publishes [Registered] and
// [Deleted], records the outcomes of opts.Outcomes, and serves the routes
// listed in the package doc. Its database (users.db, or the users tables
// on PostgreSQL) opens with the app, where the service runs.
func Register(app *troupe.App, db *store.DB, opts Options) *troupe.Service {
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.Logger == nil {
		opts.Logger = app.Logger()
	}
	svc := app.Service(ServiceName).Publishes(Registered, Deleted)
	ob := store.Outbox(app, db, ServiceName, schema...)
	a := &api{log: opts.Logger, ob: ob, maxWait: opts.MaxWait, await: newAwaiter(opts.Outcomes)}
	for _, o := range opts.Outcomes {
		o.subscribe(svc, ob, a.recordOutcome)
	}
	svc.HandleFunc("POST /users", a.register)
	svc.HandleFunc("GET /users", a.list)
	svc.HandleFunc("GET /users/{id}", a.get)
	svc.HandleFunc("DELETE /users/{id}", a.delete)
	svc.HandleFunc("/users", httpjson.Fallback("/users", "GET", "POST"))
	svc.HandleFunc("/users/{id}", httpjson.Fallback("/users/{id}", "GET", "DELETE"))
	return svc
}

// recordOutcome ends the registration of the event's correlation id (the
// user's id) with status, unless an outcome ended it before: the first
// outcome is the registration's one terminal state.
func (a *api) recordOutcome(ctx context.Context, tx *sql.Tx, env troupe.Envelope, status string) error {
	res, err := tx.ExecContext(ctx, store.Q(a.ob, `UPDATE users_registrations SET status = ?, outcome_event = ?, ended_at = ?
		WHERE user_id = ? AND status = ?`), status, env.Type, time.Now().UTC().UnixMicro(), env.CorrelationID, StatusPending)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var known int
	if err := tx.QueryRowContext(ctx, store.Q(a.ob, "SELECT count(*) FROM users_registrations WHERE user_id = ?"), env.CorrelationID).Scan(&known); err != nil {
		return err
	}
	if known == 0 {
		// The user service commits the registration before the event that
		// leads here is published: an outcome for a registration it does
		// not know belongs to another system sharing the broker.
		return troupe.Permanent(fmt.Errorf("users: %s for a registration this service does not know (correlation id %q)", env.Type, env.CorrelationID))
	}
	return nil
}
