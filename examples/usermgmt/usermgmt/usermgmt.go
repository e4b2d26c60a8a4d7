// Package usermgmt assembles the user-management example, seed 000's
// system on troupe: a user service that owns the users and publishes
// user_registered and user_deleted through its outbox, a mailer that sends
// each new user a welcome mail once, a coupon service added later without
// touching the user service, and a mail sink that plays the mail server.
//
//	POST /users → users ──user_registered──▶ mailer  ──welcome_mail_sent / _skipped / _failed──▶ users (the registration's end)
//	                  │                  └──▶ coupons ──coupon_issued
//	                  └────user_deleted──────▶ coupons (revokes)
//
// Each service lives in its own package with the topics it publishes and a
// Register function; this package puts them in one app, with the example's
// flags. The program in the parent directory runs it.
package usermgmt

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/usermgmt/coupons"
	"github.com/troupe-go/troupe/examples/usermgmt/mailer"
	"github.com/troupe-go/troupe/examples/usermgmt/mailsink"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
)

// DefaultName is the app's name when Config.Name is empty. It namespaces
// the app's streams and queues on the broker and names its PostgreSQL
// schema.
const DefaultName = "usermgmt"

// Options configure the example beyond troupe's Config. [NewApp] registers
// a flag for each one a user sets on the command line (--db, --smtp,
// --mail-sink, --users-url), with its current value as the default; they
// are read when the app starts. Every field has a default.
type Options struct {
	// DB is where the services keep their state (flag --db, default
	// $USERMGMT_DB): empty for one SQLite file per service in the app's
	// data directory (users.db, mailer.db, coupons.db, mailsink.db), or a
	// postgres:// URL for one PostgreSQL database, tables in the schema
	// named after the app.
	DB store.DB
	// SMTPAddr is the host:port of the SMTP server the mailer sends to
	// (flag --smtp). Default: the mail sink's address.
	SMTPAddr string
	// SinkAddr is where the embedded mail sink listens, in the process that
	// runs the mailsink service (flag --mail-sink). Default
	// [mailsink.DefaultAddr]. Ignored when Sink is given.
	SinkAddr string
	// UsersURL is the base URL of the user service's API, which the mailer
	// asks whether a user still exists (flag --users-url). Default: this
	// process's own HTTP server, when it runs the user service; a process
	// that runs the mailer without it does not start without one.
	UsersURL string
	// Sink is the mail sink, run where the mailsink service runs. Default:
	// a sink on SinkAddr, which NewApp puts here (for the dashboard's
	// panel, say).
	Sink *mailsink.Sink
	// Mailer tunes the mailer's retries and breaker; its SMTPAddr and
	// UsersURL are filled from the fields above when nil.
	Mailer mailer.Options
	// WithoutCoupons leaves out the coupon service: the app as it was
	// before the extension, to compare graphs. It changes the declaration,
	// so it is no flag: the program reads $USERMGMT_COUPONS=off.
	WithoutCoupons bool
}

// NewApp declares the user-management app with cfg and opts, and registers
// its flags. An empty cfg.Name becomes [DefaultName]; a nil opts is the
// zero Options.
//
// Nothing opens here: each service opens its database when the app starts,
// in the process that runs it. Start fails when a database cannot be
// opened, when the sink cannot listen, or when the mailer runs without the
// user service and no UsersURL says where it is.
func NewApp(cfg troupe.Config, opts *Options) (*troupe.App, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if opts == nil {
		opts = &Options{}
	}
	if opts.SinkAddr == "" {
		opts.SinkAddr = mailsink.DefaultAddr
	}
	app := troupe.New(cfg)
	log := cfg.Logger
	if log == nil {
		log = app.Logger()
	}
	app.Flags(func(fs *flag.FlagSet) { registerFlags(fs, opts) })
	if opts.Sink == nil {
		opts.Sink = mailsink.New(opts.SinkAddr)
		app.OnStart(func(context.Context) error {
			opts.Sink.SetAddr(opts.SinkAddr) // --mail-sink
			return nil
		})
	}
	sink := opts.Sink
	app.OnStart(func(context.Context) error {
		if err := opts.DB.Check(); err != nil {
			return err
		}
		if opts.Mailer.UsersURL == nil && opts.UsersURL == "" && app.Runs(mailer.ServiceName) && !app.Runs(users.ServiceName) {
			return errors.New("the mailer runs without the user service here: give the user service's URL with --users-url http://HOST:PORT")
		}
		return nil
	})

	users.Register(app, &opts.DB, users.Options{
		Logger: log,
		Outcomes: []users.Outcome{
			users.AwaitOutcome(mailer.WelcomeMailSent, "sent"),
			users.AwaitOutcome(mailer.WelcomeMailSkipped, "skipped"),
			users.AwaitOutcome(mailer.WelcomeMailFailed, "failed"),
		},
	})
	mailsink.Register(app, sink, &opts.DB)

	mo := opts.Mailer
	if mo.Logger == nil {
		mo.Logger = log
	}
	if mo.SMTPAddr == nil {
		mo.SMTPAddr = func() string {
			if opts.SMTPAddr != "" {
				return opts.SMTPAddr
			}
			return sink.Addr()
		}
	}
	if mo.UsersURL == nil {
		mo.UsersURL = func() string {
			if opts.UsersURL != "" {
				return opts.UsersURL
			}
			if addr := app.HTTPAddr(); addr != "" && app.Runs(users.ServiceName) {
				return "http://" + addr
			}
			return ""
		}
	}
	mailer.Register(app, &opts.DB, mo)

	if !opts.WithoutCoupons {
		coupons.Register(app, &opts.DB, log)
	}
	return app, nil
}

// registerFlags defines the example's flags on fs, each with its option's
// current value as the default.
func registerFlags(fs *flag.FlagSet, opts *Options) {
	opts.DB.Flag(fs, "USERMGMT_DB")
	fs.Var(addrFlag{&opts.SMTPAddr}, "smtp", "`host:port` of the SMTP server the mailer sends to (default: the embedded mail sink)")
	fs.Var(addrFlag{&opts.SinkAddr}, "mail-sink", "`host:port` where the embedded mail sink listens, in the process that runs the mailsink service")
	fs.Var(urlFlag{&opts.UsersURL}, "users-url", "base `URL` of the user service's API, for a mailer that runs without it (default: this process's HTTP server)")
}

// addrFlag is a host:port flag: anything else is a usage error.
type addrFlag struct{ p *string }

func (f addrFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f addrFlag) Set(v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("give host:port, such as 127.0.0.1:2525")
	}
	*f.p = v
	return nil
}

// urlFlag is an http:// or https:// URL flag.
type urlFlag struct{ p *string }

func (f urlFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f urlFlag) Set(v string) error {
	if len(v) < 8 || (v[:7] != "http://" && v[:8] != "https://") {
		return errors.New("give an http:// or https:// URL, such as http://127.0.0.1:8080")
	}
	*f.p = v
	return nil
}
