// Package portal is the job portal service of the job feed: candidates sign
// up and employers post jobs over HTTP, and candidates see the jobs found
// for them.
//
// Routes:
//
//	POST /candidates       sign up: {"name","email","preferences":{"frequency","locations"},"resume"}
//	GET  /candidates/{id}  the registration, the profile made from it, and the matched open jobs
//	POST /jobs             post a job: {"title","company","location","skills","min_years"}
//	GET  /jobs             the open jobs, newest first
//	GET  /jobs/{id}        one job
//	GET  /                 the routes and the state of the read model
//
// Registrations and jobs live in the portal's database (portal.db in the
// data directory), written in the same transaction as the events that
// announce them (the outbox package), so that neither goes without the
// other. What other services find out about a candidate (the profile, the
// matches) lives in a read model, portal-view.db, built only from their
// events; see [ViewSource].
package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/jobfeed/internal/sqlstore"
)

// ServiceName is the portal's name in the app and on --services.
const ServiceName = "portal"

// File is the portal's database of registrations and jobs in the data
// directory.
const File = "portal.db"

var schema = []string{
	`CREATE TABLE IF NOT EXISTS candidates (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		email TEXT NOT NULL UNIQUE,
		frequency TEXT NOT NULL,
		locations TEXT NOT NULL,
		resume TEXT NOT NULL,
		registered_at INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS jobs (
		id TEXT PRIMARY KEY,
		title TEXT NOT NULL,
		company TEXT NOT NULL,
		location TEXT NOT NULL,
		skills TEXT NOT NULL,
		min_years INTEGER NOT NULL,
		posted_at INTEGER NOT NULL)`,
}

// Config says how the portal runs in this process.
type Config struct {
	// DataDir holds the portal's databases. Required when Run is true.
	DataDir string
	// Run is whether this process runs the portal. When false the service
	// is only declared, so that its subscriptions keep their events for
	// the process that runs it, and no database is opened.
	Run bool
	// Log receives the portal's log lines. Default: the app's logger.
	Log *slog.Logger
}

// Register declares the portal service on app, its routes, and the
// subscriptions of its read model to sources.
func Register(app *troupe.App, cfg Config, sources ...ViewSource) (*troupe.Service, error) {
	log := cfg.Log
	if log == nil {
		log = app.Logger()
	}
	svc := app.Service(ServiceName).Publishes(CandidateRegistered, JobPosted)
	v := &view{log: log, sources: sources}
	for _, s := range sources {
		s.subscribe(svc, v)
	}
	a := &handlers{log: log, view: v}
	svc.HandleFunc("POST /candidates", a.register)
	svc.HandleFunc("/candidates", httpjson.Fallback("/candidates", "POST"))
	svc.HandleFunc("GET /candidates/{id}", a.candidate)
	svc.HandleFunc("/candidates/{id}", httpjson.Fallback("/candidates/{id}", "GET"))
	svc.HandleFunc("POST /jobs", a.postJob)
	svc.HandleFunc("GET /jobs", a.jobs)
	svc.HandleFunc("/jobs", httpjson.Fallback("/jobs", "GET", "POST"))
	svc.HandleFunc("GET /jobs/{id}", a.job)
	svc.HandleFunc("/jobs/{id}", httpjson.Fallback("/jobs/{id}", "GET"))
	svc.HandleFunc("GET /{$}", a.index)
	svc.HandleFunc("/", a.notFound)
	if !cfg.Run {
		return svc, nil
	}
	if cfg.DataDir == "" {
		return nil, errors.New("portal: no data directory")
	}
	ob, err := sqlstore.Outbox(app, cfg.DataDir, File, nil, schema...)
	if err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	vdb, err := sqlstore.Open(app, cfg.DataDir, ViewFile, viewSchema...)
	if err != nil {
		return nil, fmt.Errorf("portal: read model: %w", err)
	}
	a.ob, a.db, v.db = ob, ob.DB(), vdb
	app.OnStart(func(ctx context.Context) error { return v.build(ctx, app) })
	return svc, nil
}
