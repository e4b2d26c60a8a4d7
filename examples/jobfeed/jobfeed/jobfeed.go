// Package jobfeed assembles the job feed example: a recruitment agency's
// job portal in which four services hand a candidate on by events, with
// no service in charge of the whole.
//
//	POST /candidates → portal ──candidate_registered──▶ profile (fetches the resume from the portal)
//	profile ──profile_created──▶ recommendation, portal (read model)
//	profile ──profile_failed──▶ portal (read model): the declared end of a resume that cannot be read
//	POST /jobs → portal ──job_posted──▶ recommendation ──job_matched──▶ portal (read model)
//	recommendation ──open_jobs_found──▶ notification (instant, or a daily/weekly/monthly digest), portal (read model)
//	notification ──message_due──▶ notification (sends through the messenger)
//
// Each service lives in its own package with the topics it publishes and a
// Register function; this package puts them in one app, with its flags.
// The program in the parent directory runs it.
package jobfeed

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"strings"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/jobfeed/notification"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/examples/jobfeed/profile"
	"github.com/troupe-go/troupe/examples/jobfeed/recommendation"
	"github.com/troupe-go/troupe/outbox"
)

// DefaultName is the app's name when Config.Name is empty. It namespaces
// the app on the broker, names its PostgreSQL schema, and starts its
// events' sources ("/jobfeed/portal").
const DefaultName = "jobfeed"

// Options tune the services beyond troupe.Config. [NewApp] registers a
// flag for each one a user sets (--portal-url, --daily-digest,
// --weekly-digest, --monthly-digest, --db) with its current value as the
// default; the services read them when the app starts.
type Options struct {
	// PortalURL is the base URL of the portal's HTTP API, where the
	// profile service fetches registrations, such as
	// "http://portal.internal:8080" (flag --portal-url, default
	// $JOBFEED_PORTAL_URL). Empty: this process's own HTTP server, which
	// serves the portal when it runs here; a process that runs the profile
	// service without the portal, or with --http off, fails to start
	// without it.
	PortalURL string
	// Digests are the digests' schedules (flags --daily-digest,
	// --weekly-digest, --monthly-digest; see outbox.ParseSpec). Empty
	// fields take the defaults of package notification: daily at 08:00,
	// Mondays at 08:00, the 1st at 08:00, UTC.
	Digests notification.Digests
	// DB is where the services keep their state (flag --db, default
	// $JOBFEED_DB): empty for SQLite files in the data directory, or a
	// postgres:// URL.
	DB store.DB
	// Clock times the notification digests. Default: the system clock.
	Clock outbox.Clock
	// Log receives the services' log lines. Default: the app's logger.
	Log *slog.Logger
}

// NewApp declares the job feed app with cfg and opts, and registers its
// flags. An empty cfg.Name becomes [DefaultName]; a nil opts is the zero
// Options.
//
// Nothing opens here: each service opens its database (SQLite files in the
// data directory, or PostgreSQL with --db) when the app starts, in the
// process that runs it. Start fails when a database cannot be opened, when
// a digest schedule does not parse, or when the profile service runs
// without the portal, or with the HTTP server off, and no PortalURL says
// where the portal is.
func NewApp(cfg troupe.Config, opts *Options) (*troupe.App, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if opts == nil {
		opts = &Options{}
	}
	app := troupe.New(cfg)
	log := opts.Log
	if log == nil {
		log = app.Logger()
	}
	app.Flags(func(fs *flag.FlagSet) { registerFlags(fs, opts) })

	portalURL := func() string {
		if opts.PortalURL != "" {
			return opts.PortalURL
		}
		if addr := app.HTTPAddr(); addr != "" {
			return "http://" + addr
		}
		return ""
	}
	app.OnStart(func(context.Context) error {
		if err := opts.DB.Check(); err != nil {
			return err
		}
		if opts.PortalURL == "" && app.Runs(profile.ServiceName) && !app.Runs(portal.ServiceName) {
			return errNoPortal
		}
		return nil
	})
	app.OnReady(func(context.Context) error {
		if opts.PortalURL == "" && app.Runs(profile.ServiceName) && app.HTTPAddr() == "" {
			return errNoPortal
		}
		return nil
	})

	portal.Register(app, portal.Config{DB: &opts.DB, Log: log},
		portal.Profiles(profile.Created), portal.Failures(profile.Failed),
		portal.Matches(recommendation.OpenJobsFound), portal.JobsMatched(recommendation.JobMatched))
	profile.Register(app, profile.Options{PortalURL: portalURL, Log: log})
	recommendation.Register(app, recommendation.Config{DB: &opts.DB, Log: log})
	notification.Register(app, notification.Config{DB: &opts.DB, Digests: &opts.Digests, Clock: opts.Clock, Log: log})
	return app, nil
}

var errNoPortal = errors.New("jobfeed: the profile service fetches registrations from the portal's HTTP API, which this process does not serve: pass --portal-url http://HOST:PORT (or set JOBFEED_PORTAL_URL)")

// registerFlags defines the job feed's flags on fs, each with its option's
// current value as the default.
func registerFlags(fs *flag.FlagSet, opts *Options) {
	if opts.PortalURL == "" {
		opts.PortalURL = os.Getenv("JOBFEED_PORTAL_URL")
	}
	fs.Var(urlFlag{&opts.PortalURL}, "portal-url", "base `URL` of the portal's HTTP API, where the profile service reads registrations when the portal runs in another process (default $JOBFEED_PORTAL_URL, else this process's own HTTP server)")
	for _, d := range []struct {
		name, dflt string
		dst        *string
	}{
		{"daily-digest", notification.DefaultDaily, &opts.Digests.Daily},
		{"weekly-digest", notification.DefaultWeekly, &opts.Digests.Weekly},
		{"monthly-digest", notification.DefaultMonthly, &opts.Digests.Monthly},
	} {
		if *d.dst == "" {
			*d.dst = d.dflt
		}
		fs.Var(specFlag{d.dst}, d.name, "when the "+strings.TrimSuffix(d.name, "-digest")+" digests go out: a `SPEC` such as \"daily at 08:00\", \"weekly on monday at 08:00 in Europe/Paris\", \"every 30s\" (UTC unless a zone is given)")
	}
	opts.DB.Flag(fs, "JOBFEED_DB")
}

// urlFlag is --portal-url: anything but an http:// or https:// URL is a
// usage error.
type urlFlag struct{ p *string }

func (f urlFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f urlFlag) Set(v string) error {
	if v != "" && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		return errors.New("give an http:// or https:// URL, such as http://localhost:8080")
	}
	*f.p = v
	return nil
}

// specFlag is a digest schedule on the command line: a spec that does not
// parse is a usage error.
type specFlag struct{ p *string }

func (f specFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f specFlag) Set(v string) error {
	if _, err := outbox.ParseSpec(v); err != nil {
		return err
	}
	*f.p = v
	return nil
}
