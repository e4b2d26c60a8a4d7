// Package mailer is the mailer service of the user-management example: it
// sends each registered user a welcome mail over SMTP, once.
//
// Before sending, it asks the user service's API whether the user still
// exists (GET /users/{id}). The API reads the users' table, the only
// place that knows about a deletion the mailer has not heard of yet:
// user_registered and user_deleted travel on two topics with no order
// between them, so a read model built from them could still hold a user
// that is gone. A user deleted before the mail goes out gets none.
//
// Each user_registered event is handled through an inbox
// (outbox.Subscribe): the mail is sent inside the transaction that records
// the event as handled and writes [WelcomeMailSent], so a redelivered event
// finds the record and sends nothing. The one gap is a crash after the SMTP
// server accepted the mail and before the commit: the event is then handled
// again and the mail sent twice, with the same Message-ID, which the
// receiving side can use to drop the copy.
//
// While the SMTP server is down the subscription's circuit breaker holds
// the waiting events instead of burning their attempts, and the broker
// retries the one in hand with backoff; the mails go out once the server is
// back. A registration whose every attempt failed ends with
// [WelcomeMailFailed] (troupe.OnFailure), not in the dead letters.
//
// The mailer keeps its inbox and outbox in mailer.db in the data directory
// (the mailer_ tables on PostgreSQL).
package mailer

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the mailer's name in the app and on --services.
const ServiceName = "mailer"

// Defaults of Options.
const (
	DefaultFrom            = "welcome@usermgmt.example"
	DefaultTimeout         = 10 * time.Second
	DefaultMaxAttempts     = 30
	DefaultMinBackoff      = time.Second
	DefaultMaxBackoff      = time.Minute
	DefaultBreakerFailures = 3
	DefaultBreakerCooldown = 5 * time.Second
)

// Options configure the mailer. SMTPAddr and UsersURL are required (a
// process that runs the mailer without them fails to start); every other
// field has a default.
type Options struct {
	// SMTPAddr returns the host:port of the SMTP server. It is asked before
	// each mail, so it may follow a server that moves.
	SMTPAddr func() string
	// UsersURL returns the base URL of the user service's API
	// ("http://127.0.0.1:8080"), asked before each mail.
	UsersURL func() string
	// From is the sender of the welcome mails. Default [DefaultFrom].
	From string
	// Timeout bounds one SMTP conversation and one call to the user API.
	// Default [DefaultTimeout].
	Timeout time.Duration
	// MaxAttempts is how many times a registration is tried before it goes
	// to the subscription's dead letters. Default [DefaultMaxAttempts].
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the delay between attempts. Defaults
	// [DefaultMinBackoff] and [DefaultMaxBackoff].
	MinBackoff, MaxBackoff time.Duration
	// BreakerFailures failed attempts in a row open the circuit breaker,
	// which holds the waiting mails for BreakerCooldown (doubling while the
	// server stays down). Defaults [DefaultBreakerFailures] and
	// [DefaultBreakerCooldown].
	BreakerFailures int
	BreakerCooldown time.Duration
	// Logger gets one line per mail sent or skipped. Default: the app's.
	Logger *slog.Logger
}

func (o *Options) setDefaults(app *troupe.App) {
	if o.From == "" {
		o.From = DefaultFrom
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = DefaultBreakerFailures
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = DefaultBreakerCooldown
	}
	if o.Logger == nil {
		o.Logger = app.Logger()
	}
}

// Register declares the mailer on app: it subscribes to
// users.Registered as "send-welcome" and publishes [WelcomeMailSent],
// [WelcomeMailSkipped] and [WelcomeMailFailed]. Its database, where it
// keeps its inbox and outbox (tables prefixed "mailer"), opens with the
// app where the mailer runs.
func Register(app *troupe.App, db *store.DB, opts Options) *troupe.Service {
	opts.setDefaults(app)
	svc := app.Service(ServiceName).Publishes(WelcomeMailSent, WelcomeMailSkipped, WelcomeMailFailed)
	ob := store.Outbox(app, db, ServiceName)
	app.OnStart(func(context.Context) error {
		if app.Runs(ServiceName) && (opts.SMTPAddr == nil || opts.UsersURL == nil) {
			return errors.New("mailer: Options.SMTPAddr and Options.UsersURL are required where the mailer runs")
		}
		return nil
	})
	m := &mailer{opts: opts, http: &http.Client{Timeout: opts.Timeout}}
	outbox.Subscribe(svc, users.Registered, "send-welcome", ob, m.sendWelcome,
		troupe.Emits(WelcomeMailSent, WelcomeMailSkipped, WelcomeMailFailed),
		troupe.MaxAttempts(opts.MaxAttempts),
		troupe.Backoff(opts.MinBackoff, opts.MaxBackoff),
		troupe.CircuitBreaker(opts.BreakerFailures, opts.BreakerCooldown),
		// The SMTP conversation runs inside the inbox's transaction.
		troupe.Deadline(3*opts.Timeout),
		// Every attempt failed (the SMTP server or the user API stayed
		// down): the registration ends as failed, with the last error.
		troupe.OnFailure(WelcomeMailFailed, func(ev troupe.Event[users.RegisteredV1], cause error) WelcomeMailFailedV1 {
			reason := "every attempt to send the welcome mail failed"
			if cause != nil {
				reason += ": " + cause.Error()
			}
			return WelcomeMailFailedV1{UserID: ev.Data.UserID, Email: ev.Data.Email, Reason: reason}
		}))
	return svc
}

type mailer struct {
	opts Options
	http *http.Client
}

// sendWelcome handles one registration inside the inbox's transaction tx.
func (m *mailer) sendWelcome(ctx context.Context, tx *sql.Tx, ev troupe.Event[users.RegisteredV1]) error {
	u := ev.Data
	exists, err := m.userExists(ctx, u.UserID)
	if err != nil {
		return err
	}
	if !exists {
		m.opts.Logger.Info(fmt.Sprintf("mailer: user %s is gone; no welcome mail to %s", u.UserID, u.Email))
		return outbox.PublishTx(ctx, tx, WelcomeMailSkipped, WelcomeMailSkippedV1{UserID: u.UserID, Reason: "the user was deleted before the mail was sent"})
	}
	msgID := fmt.Sprintf("<%s@usermgmt.troupe>", ev.ID)
	err = m.send(ctx, u, msgID)
	var reply *textproto.Error
	if errors.As(err, &reply) && reply.Code >= 500 {
		// The server refuses this mail for good; trying again changes
		// nothing. Recorded like a success, so it is reported once.
		m.opts.Logger.Warn(fmt.Sprintf("mailer: the SMTP server refused the welcome mail to %s: %v", u.Email, err))
		return outbox.PublishTx(ctx, tx, WelcomeMailFailed, WelcomeMailFailedV1{UserID: u.UserID, Email: u.Email, Reason: err.Error()})
	}
	if err != nil {
		return fmt.Errorf("send welcome mail to %s: %w", u.Email, err)
	}
	m.opts.Logger.Info(fmt.Sprintf("mailer: sent welcome mail %s to %s for user %s", msgID, u.Email, u.UserID))
	return outbox.PublishTx(ctx, tx, WelcomeMailSent, WelcomeMailSentV1{UserID: u.UserID, Email: u.Email, MessageID: msgID, SentAt: time.Now().UTC()})
}

// userExists asks the user service whether the user is still there.
func (m *mailer) userExists(ctx context.Context, id string) (bool, error) {
	base := strings.TrimRight(m.opts.UsersURL(), "/")
	if base == "" {
		return false, errors.New("the user service's address is not known yet: run it with HTTP on, or pass --users-url")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/users/"+url.PathEscape(id), nil)
	if err != nil {
		return false, troupe.Permanent(err)
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("ask the user service about %s: %w", id, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var u struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&u); err != nil || u.ID != id {
			return false, fmt.Errorf("the user service answered GET /users/%s with %q (%v)", id, u.ID, err)
		}
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("the user service answered GET /users/%s with %s", id, resp.Status)
}

// send delivers the welcome mail for u over SMTP.
func (m *mailer) send(ctx context.Context, u users.RegisteredV1, msgID string) error {
	addr := m.opts.SMTPAddr()
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("SMTP server %s: %w", addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP server %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Mail(m.opts.From); err != nil {
		return err
	}
	if err := c.Rcpt(u.Email); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(m.message(u, msgID)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// message returns the welcome mail for u, headers and body, with CRLF line
// ends as SMTP wants.
func (m *mailer) message(u users.RegisteredV1, msgID string) []byte {
	from := mail.Address{Name: "User management", Address: m.opts.From}
	to := mail.Address{Name: u.Name, Address: u.Email}
	lines := []string{
		"From: " + from.String(),
		"To: " + to.String(),
		"Subject: " + mime.QEncoding.Encode("utf-8", "Welcome, "+u.Name+"!"),
		"Date: " + time.Now().Format(time.RFC1123Z),
		"Message-ID: " + msgID,
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"Content-Transfer-Encoding: 8bit",
		"",
		"Hello " + u.Name + ",",
		"",
		"welcome aboard! Your account " + u.UserID + " is ready.",
		"",
		"-- ",
		"The user-management example of troupe",
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}
