// Package jobfeed assembles the job feed example: a recruitment agency's
// job portal in which four services hand a candidate on by events, with
// no service in charge of the whole.
//
//	POST /candidates → portal ──candidate_registered──▶ profile (fetches the resume from the portal)
//	profile ──profile_created──▶ recommendation, portal (read model)
//	POST /jobs → portal ──job_posted──▶ recommendation
//	recommendation ──open_jobs_found──▶ notification (instant, or a daily/weekly/monthly digest), portal (read model)
//
// Each service lives in its own package with the topics it publishes and a
// Register function; this package puts them in one app. The program in
// the parent directory runs it.
package jobfeed

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/jobfeed/notification"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/examples/jobfeed/profile"
	"github.com/troupe-go/troupe/examples/jobfeed/recommendation"
	"github.com/troupe-go/troupe/outbox"
)

// DefaultName is the app's name when Config.Name is empty. It namespaces
// the app on the broker and starts its events' sources ("/jobfeed/portal").
const DefaultName = "jobfeed"

// Options tune the services beyond troupe.Config.
type Options struct {
	// PortalURL is the base URL of the portal's HTTP API, where the
	// profile service fetches registrations, such as
	// "http://portal.internal:8080". Default: this process's own HTTP
	// server, which serves the portal when it runs here. A process that
	// runs the profile service without the portal needs it.
	PortalURL string
	// Clock times the notification digests. Default: the system clock.
	Clock outbox.Clock
	// Daily, Weekly and Monthly override the digests' schedules (see
	// outbox.ParseSpec); defaults in package notification.
	Daily, Weekly, Monthly string
	// Log receives the services' log lines. Default: the app's logger.
	Log *slog.Logger
	// DeclareOnly declares the services without running any here: no
	// database is opened. For commands that only read the declaration
	// (graph, --help).
	DeclareOnly bool
}

// NewApp declares the job feed app with cfg and opts. An empty cfg.Name
// becomes [DefaultName].
//
// The services keep their databases in the data directory: cfg.DataDir,
// else $TROUPE_DATA, else .troupe/<name>, as troupe's embedded broker does.
// Only the services this process runs (cfg.Services; empty means all) open
// theirs. The --data and --services flags of App.Main come too late for
// that, so the program in the parent directory reads them into cfg before
// calling NewApp.
//
// It fails when a database cannot be opened, or when the profile service
// runs without the portal, or with the HTTP server off, and no
// opts.PortalURL says where the portal is.
func NewApp(cfg troupe.Config, opts Options) (*troupe.App, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	dir := DataDir(cfg)
	runs := func(name string) bool {
		return !opts.DeclareOnly && (len(cfg.Services) == 0 || slices.Contains(cfg.Services, name))
	}
	app := troupe.New(cfg)
	log := opts.Log
	if log == nil {
		log = app.Logger()
	}

	portalURL := func() string { return opts.PortalURL }
	if opts.PortalURL == "" {
		if runs(profile.ServiceName) && (!runs(portal.ServiceName) || cfg.HTTPAddr == "off") {
			return nil, errors.New("jobfeed: the profile service fetches registrations from the portal's HTTP API, which this process does not serve: pass --portal-url http://HOST:PORT (or set JOBFEED_PORTAL_URL)")
		}
		portalURL = func() string {
			if addr := app.HTTPAddr(); addr != "" {
				return "http://" + addr
			}
			return ""
		}
	}

	if _, err := portal.Register(app, portal.Config{DataDir: dir, Run: runs(portal.ServiceName), Log: log},
		portal.Profiles(profile.Created), portal.Matches(recommendation.OpenJobsFound)); err != nil {
		return nil, err
	}
	profile.Register(app, profile.Options{PortalURL: portalURL, Log: log})
	if _, err := recommendation.Register(app, recommendation.Config{DataDir: dir, Run: runs(recommendation.ServiceName), Log: log}); err != nil {
		return nil, err
	}
	if _, err := notification.Register(app, notification.Config{
		DataDir: dir, Run: runs(notification.ServiceName), Clock: opts.Clock,
		Daily: opts.Daily, Weekly: opts.Weekly, Monthly: opts.Monthly, Log: log,
	}); err != nil {
		return nil, err
	}
	return app, nil
}

// DataDir returns the data directory an app with cfg uses: cfg.DataDir,
// else $TROUPE_DATA, else .troupe/<name>, the rule of troupe.Config.
func DataDir(cfg troupe.Config) string {
	if cfg.DataDir != "" {
		return cfg.DataDir
	}
	if d := os.Getenv("TROUPE_DATA"); d != "" {
		return d
	}
	name := cfg.Name
	if name == "" {
		name = DefaultName
	}
	return filepath.Join(".troupe", name)
}
