// Package portal is the job portal service of the job feed: candidates sign
// up and employers post jobs over HTTP, and candidates see the jobs found
// for them.
//
// Routes:
//
//	POST /candidates       sign up: {"name","email","preferences":{"frequency","locations"},"resume"}; header Idempotency-Key optional
//	GET  /candidates       the registrations: count, by_status, terminal, stuck, and the newest
//	GET  /candidates/{id}  the registration, the profile made from it, and the matched open jobs
//	POST /jobs             post a job: {"title","company","location","skills","min_years"}; header Idempotency-Key optional
//	GET  /jobs             the jobs, newest first: count, by_status, terminal, stuck
//	GET  /jobs/{id}        one job
//	GET  /                 the routes and the state of the read model
//
// Registrations and jobs live in the portal's database (portal.db in the
// data directory, or the portal_ tables on PostgreSQL), written in the same
// transaction as the events that announce them (the outbox package), so
// that neither goes without the other. What other services found out about
// a candidate or a job (the profile, the matches, how a job was matched)
// lives in a read model, portal-view.db (the portal_view_ tables), built
// only from their events; see [ViewSource].
package portal

import (
	"context"
	"log/slog"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
)

// ServiceName is the portal's name in the app and on --services.
const ServiceName = "portal"

var schema = []string{
	`CREATE TABLE IF NOT EXISTS portal_candidates (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		email TEXT NOT NULL UNIQUE,
		frequency TEXT NOT NULL,
		locations TEXT NOT NULL,
		resume TEXT NOT NULL,
		registered_at BIGINT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS portal_candidates_registered ON portal_candidates (registered_at)`,
	`CREATE TABLE IF NOT EXISTS portal_jobs (
		id TEXT PRIMARY KEY,
		title TEXT NOT NULL,
		company TEXT NOT NULL,
		location TEXT NOT NULL,
		skills TEXT NOT NULL,
		min_years INTEGER NOT NULL,
		posted_at BIGINT NOT NULL)`,
	// One row per Idempotency-Key a client sent with a POST: a retried
	// request finds it and gets the resource made the first time. The
	// key is stored with what it was for, so that the same key on the
	// other route is refused rather than answered with the wrong kind.
	`CREATE TABLE IF NOT EXISTS portal_idempotency (
		idem_key TEXT PRIMARY KEY,
		kind TEXT NOT NULL,
		resource_id TEXT NOT NULL,
		created_at BIGINT NOT NULL)`,
}

// Config says how the portal keeps its state.
type Config struct {
	// DB is where: SQLite files in the data directory, or PostgreSQL. It is
	// read when the app starts.
	DB *store.DB
	// Log receives the portal's log lines. Default: the app's logger.
	Log *slog.Logger
}

// Register declares the portal service on app, its routes, its database
// (opened at start where the portal runs), and the subscriptions of its
// read model to sources.
func Register(app *troupe.App, cfg Config, sources ...ViewSource) *troupe.Service {
	log := cfg.Log
	if log == nil {
		log = app.Logger()
	}
	svc := app.Service(ServiceName).Publishes(CandidateRegistered, JobPosted)
	ob := store.Outbox(app, cfg.DB, ServiceName, schema...)
	v := &view{h: store.Declare(app, cfg.DB, ServiceName, ViewFile, viewSchema...), log: log, sources: sources}
	for _, s := range sources {
		s.subscribe(svc, v)
	}
	// After the view's database opens (store.Declare's OnStart comes first)
	// and before the subscriptions consume.
	app.OnStart(func(ctx context.Context) error {
		if !app.Runs(ServiceName) {
			return nil
		}
		return v.build(ctx, app)
	})
	a := &handlers{log: log, ob: ob, view: v}
	svc.HandleFunc("POST /candidates", a.register)
	svc.HandleFunc("GET /candidates", a.candidates)
	svc.HandleFunc("/candidates", httpjson.Fallback("/candidates", "GET", "POST"))
	svc.HandleFunc("GET /candidates/{id}", a.candidate)
	svc.HandleFunc("/candidates/{id}", httpjson.Fallback("/candidates/{id}", "GET"))
	svc.HandleFunc("POST /jobs", a.postJob)
	svc.HandleFunc("GET /jobs", a.jobs)
	svc.HandleFunc("/jobs", httpjson.Fallback("/jobs", "GET", "POST"))
	svc.HandleFunc("GET /jobs/{id}", a.job)
	svc.HandleFunc("/jobs/{id}", httpjson.Fallback("/jobs/{id}", "GET"))
	svc.HandleFunc("GET /{$}", a.index)
	svc.HandleFunc("/", a.notFound)
	return svc
}
