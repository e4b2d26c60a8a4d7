// Package usermgmt assembles the user-management example, seed 000's
// system on troupe: a user service that owns the users and publishes
// user_registered and user_deleted through its outbox, a mailer that sends
// each new user a welcome mail once, a coupon service added later without
// touching the user service, and a mail sink that plays the mail server.
//
//	POST /users → users ──user_registered──▶ mailer  ──welcome_mail_sent / _skipped / _failed
//	                  │                  └──▶ coupons ──coupon_issued
//	                  └────user_deleted──────▶ coupons (revokes)
//
// Each service lives in its own package with the topics it publishes and a
// Register function; this package only puts them in one app and opens each
// running service's database. The program in the parent directory runs it.
package usermgmt

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/usermgmt/coupons"
	"github.com/troupe-go/troupe/examples/usermgmt/internal/store"
	"github.com/troupe-go/troupe/examples/usermgmt/mailer"
	"github.com/troupe-go/troupe/examples/usermgmt/mailsink"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
)

// DefaultName is the app's name when Config.Name is empty. It namespaces
// the app's streams and queues on the broker.
const DefaultName = "usermgmt"

// Options configure the example beyond troupe's Config. Every field has a
// default.
type Options struct {
	// Database is where the services keep their state. Default "": one
	// SQLite file per service in the app's data directory (users.db,
	// mailer.db, coupons.db). A postgres:// URL puts every service's tables
	// in that PostgreSQL database instead, each under its own names.
	Database string
	// SMTPAddr is the host:port of the SMTP server the mailer sends to.
	// Default: the embedded mail sink's address.
	SMTPAddr string
	// UsersURL is the base URL of the user service's API, which the mailer
	// asks whether a user still exists. Default: this process's own HTTP
	// server, when it runs the user service; a process that runs the
	// mailer without it must be given one.
	UsersURL string
	// Sink is the embedded mail sink, run where the mailsink service runs.
	// Default: a sink on [mailsink.DefaultAddr].
	Sink *mailsink.Sink
	// Mailer tunes the mailer's retries and breaker; its SMTPAddr and
	// UsersURL are filled from the fields above when nil.
	Mailer mailer.Options
	// WithoutCoupons leaves out the coupon service: the app as it was
	// before the extension, to compare graphs.
	WithoutCoupons bool
	// DeclareOnly declares the app without opening anything, whatever
	// Config.Services says: for commands such as graph.
	DeclareOnly bool
}

// NewApp declares the user-management app with cfg and opts. It opens the
// database of each service that runs in this process (cfg.Services; empty
// means all) and closes it when the app stops. An empty cfg.Name becomes
// [DefaultName]; cfg.DataDir, $TROUPE_DATA or .troupe/<name> is the data
// directory, as troupe has it. It fails when a database cannot be opened,
// or when the mailer runs here without a way to reach the user service.
func NewApp(cfg troupe.Config, opts Options) (*troupe.App, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	app := troupe.New(cfg)
	log := cfg.Logger
	if log == nil {
		log = app.Logger()
	}
	runs := func(service string) bool {
		return !opts.DeclareOnly && (len(cfg.Services) == 0 || slices.Contains(cfg.Services, service))
	}
	dataDir := cfg.DataDir
	if dataDir == "" {
		dataDir = os.Getenv("TROUPE_DATA")
	}
	if dataDir == "" {
		dataDir = filepath.Join(".troupe", cfg.Name)
	}
	var opened []*sql.DB
	fail := func(err error) (*troupe.App, error) {
		for _, db := range opened {
			db.Close()
		}
		return nil, err
	}
	// Registered first, so it runs after the outboxes' relays have stopped
	// (OnStop functions run in reverse order).
	app.OnStop(func(context.Context) error {
		var errs []error
		for _, db := range opened {
			errs = append(errs, db.Close())
		}
		return errors.Join(errs...)
	})
	open := func(service string) (*sql.DB, error) {
		if !runs(service) {
			return nil, nil
		}
		db, err := store.Open(opts.Database, dataDir, service)
		if err != nil {
			return nil, err
		}
		opened = append(opened, db)
		return db, nil
	}

	db, err := open(users.ServiceName)
	if err != nil {
		return fail(err)
	}
	if _, err := users.Register(app, db, users.Options{
		Logger: log,
		Outcomes: []users.Outcome{
			users.AwaitOutcome(mailer.WelcomeMailSent, "sent"),
			users.AwaitOutcome(mailer.WelcomeMailSkipped, "skipped"),
			users.AwaitOutcome(mailer.WelcomeMailFailed, "failed"),
		},
	}); err != nil {
		return fail(err)
	}

	var sink *mailsink.Sink
	if runs(mailsink.ServiceName) {
		sink = opts.Sink
		if sink == nil {
			sink = mailsink.New(mailsink.DefaultAddr)
		}
	}
	mailsink.Register(app, sink)

	mo := opts.Mailer
	if mo.Logger == nil {
		mo.Logger = log
	}
	if mo.SMTPAddr == nil {
		switch {
		case opts.SMTPAddr != "":
			addr := opts.SMTPAddr
			mo.SMTPAddr = func() string { return addr }
		case opts.Sink != nil:
			mo.SMTPAddr = opts.Sink.Addr
		default:
			mo.SMTPAddr = func() string { return mailsink.DefaultAddr }
		}
	}
	if mo.UsersURL == nil {
		switch {
		case opts.UsersURL != "":
			u := opts.UsersURL
			mo.UsersURL = func() string { return u }
		case runs(users.ServiceName):
			mo.UsersURL = func() string {
				if addr := app.HTTPAddr(); addr != "" {
					return "http://" + addr
				}
				return ""
			}
		case runs(mailer.ServiceName):
			return fail(errors.New("the mailer runs without the user service here: give the user service's URL with --users-url http://HOST:PORT"))
		}
	}
	if db, err = open(mailer.ServiceName); err != nil {
		return fail(err)
	}
	if _, err := mailer.Register(app, db, mo); err != nil {
		return fail(err)
	}

	if !opts.WithoutCoupons {
		if db, err = open(coupons.ServiceName); err != nil {
			return fail(err)
		}
		if _, err := coupons.Register(app, db, log); err != nil {
			return fail(err)
		}
	}

	return app, nil
}
