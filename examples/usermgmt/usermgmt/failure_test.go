package usermgmt_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/usermgmt/coupons"
	"github.com/troupe-go/troupe/examples/usermgmt/mailer"
	"github.com/troupe-go/troupe/examples/usermgmt/mailsink"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/troupetest"
)

// TestMailServerDownThenUp: while the SMTP server is down, registrations
// succeed and their mails wait (the breaker opens and holds them); once it
// is back every user gets exactly one mail, and nothing is dead-lettered.
func TestMailServerDownThenUp(t *testing.T) {
	var sent *troupetest.Observer[mailer.WelcomeMailSentV1]
	s := startSystem(t, &usermgmt.Options{}, func(app *troupe.App) {
		sent = troupetest.Observe(t, app, mailer.WelcomeMailSent)
	})
	if err := s.sink.Stop(); err != nil {
		t.Fatal(err)
	}

	// A client that waits gets 202 when the mail cannot go out in time.
	first := register(t, s, "Edsger", "edsger@example.com", http.StatusAccepted, "Prefer: wait=1")
	if first.WelcomeMail.Status != "pending" {
		t.Errorf("welcome_mail = %+v, want pending while the mail server is down", first.WelcomeMail)
	}
	var all []users.User
	all = append(all, first)
	for i := range 4 {
		all = append(all, register(t, s, fmt.Sprintf("User %d", i), fmt.Sprintf("user%d@example.com", i), http.StatusAccepted))
	}

	// The failures open the mailer's circuit breaker: the mails wait.
	sub := subscription(t, s.app, "mailer.send-welcome")
	poll(t, "the mailer's breaker to open", func() bool { return sub.BreakerState() == troupe.BreakerOpen })
	if n := len(s.sink.Mails("")); n != 0 {
		t.Fatalf("%d mails while the server was down", n)
	}

	if err := s.sink.Start(); err != nil {
		t.Fatal(err)
	}
	for _, u := range all {
		ev := sent.WaitCorrelation(t, u.ID)
		mails := s.sink.Mails(u.Email)
		if len(mails) != 1 || mails[0].MessageID != ev.Data.MessageID {
			t.Errorf("mails to %s: %+v, want exactly one, Message-ID %s", u.Email, mails, ev.Data.MessageID)
		}
	}
	if n := len(s.sink.Mails("")); n != len(all) {
		t.Errorf("%d mails in all, want %d", n, len(all))
	}
	if n := len(sent.Events()); n != len(all) {
		t.Errorf("%d welcome_mail_sent events, want %d", n, len(all))
	}
	poll(t, "the breaker to close", func() bool { return sub.BreakerState() == troupe.BreakerClosed })
	noDeadLetters(t, s.app)
}

// TestDeletedBeforeMail: the mailer is not running while a user registers
// and is deleted; when it starts it asks the user service, finds the user
// gone, and sends no mail (welcome_mail_skipped), while the user who stayed
// gets theirs.
//
// The mailer runs in an app of its own on the first app's broker, so the
// deletion surely comes before the mailer's first look. (Stopping the mail
// server instead leaves a window: an attempt that checked the user just
// before the deletion and reaches the server just after it is back sends
// the mail, as it would in production. The README says so.)
func TestDeletedBeforeMail(t *testing.T) {
	sink := mailsink.New("127.0.0.1:0")
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Stop() })
	cfg := troupetest.Config(t, troupe.Config{Broker: "embedded:?listen=127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Services: []string{users.ServiceName, coupons.ServiceName, mailsink.ServiceName}})
	api, err := usermgmt.NewApp(cfg, &usermgmt.Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, api)
	t.Cleanup(client.CloseIdleConnections)
	s := &system{app: api, base: "http://" + api.HTTPAddr(), sink: sink}
	broker := api.Transport().(*natsjs.Transport).Server().ClientURL()

	gone := register(t, s, "Gone Soon", "gone@example.com", http.StatusAccepted)
	kept := register(t, s, "Kept", "kept@example.com", http.StatusAccepted)
	if status, _, b := do(t, "DELETE", s.base+"/users/"+gone.ID, ""); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, b)
	}

	// An observer of the mailer's outcomes, in an app of its own.
	watch := troupe.New(troupetest.Config(t, troupe.Config{Name: usermgmt.DefaultName, Broker: broker}))
	watch.Topics(mailer.WelcomeMailSkipped, mailer.WelcomeMailSent)
	skipped := troupetest.Observe(t, watch, mailer.WelcomeMailSkipped)
	sent := troupetest.Observe(t, watch, mailer.WelcomeMailSent)
	troupetest.Start(t, watch)

	// Now the mailer starts.
	m, err := usermgmt.NewApp(troupetest.Config(t, troupe.Config{Broker: broker, Services: []string{mailer.ServiceName}}),
		&usermgmt.Options{UsersURL: s.base, SMTPAddr: sink.Addr(), Mailer: fastMailer})
	if err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, m)

	ev := skipped.WaitCorrelation(t, gone.ID)
	if ev.Data.UserID != gone.ID || ev.Data.Reason == "" {
		t.Errorf("welcome_mail_skipped = %+v", ev.Data)
	}
	sent.WaitCorrelation(t, kept.ID)
	if m := sink.Mails(gone.Email); len(m) != 0 {
		t.Errorf("the deleted user got mail: %+v", m)
	}
	if m := sink.Mails(kept.Email); len(m) != 1 {
		t.Errorf("the kept user got %d mails, want 1", len(m))
	}
	for _, e := range sent.Events() {
		if e.Data.UserID == gone.ID {
			t.Errorf("welcome_mail_sent for the deleted user: %+v", e.Data)
		}
	}
	poll(t, "the deleted user's coupon to be revoked", func() bool {
		_, _, b := do(t, "GET", s.base+"/coupons/"+gone.ID, "")
		var c coupons.Coupon
		return json.Unmarshal(b, &c) == nil && c.Status == "revoked"
	})
}

// TestRefusedMail: a mail the SMTP server refuses for good (550) is not
// retried; the waiting client hears that it failed.
func TestRefusedMail(t *testing.T) {
	s := startSystem(t, &usermgmt.Options{}, nil)
	u := register(t, s, "Nobody", "nobody@"+mailsink.RejectDomain, http.StatusCreated, "Prefer: wait=10")
	if u.WelcomeMail.Status != "failed" || u.WelcomeMail.Event == nil {
		t.Fatalf("welcome_mail = %+v, want failed", u.WelcomeMail)
	}
	var failed mailer.WelcomeMailFailedV1
	if err := json.Unmarshal(u.WelcomeMail.Event.Data, &failed); err != nil || failed.UserID != u.ID || failed.Reason == "" {
		t.Errorf("welcome_mail_failed data %s (%v)", u.WelcomeMail.Event.Data, err)
	}
	if n := len(s.sink.Mails("")); n != 0 {
		t.Errorf("%d mails kept, want none", n)
	}
	noDeadLetters(t, s.app)
}

// TestRedeliverySendsNoSecondMail hands the mailer's handler one
// user_registered event twice, as a broker redelivering it would, with the
// real database and the real SMTP sink: one mail, and the second delivery
// succeeds without sending. (On the embedded broker a republished copy
// would be dropped by NATS's deduplication before reaching the handler,
// which would prove nothing; a Recorder delivers exactly what it is given.)
func TestRedeliverySendsNoSecondMail(t *testing.T) {
	sink := mailsink.New("127.0.0.1:0")
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Stop() })
	rec := troupetest.NewRecorder()
	cfg := troupetest.Config(t, troupe.Config{Transport: rec, HTTPAddr: "127.0.0.1:0"})
	app, err := usermgmt.NewApp(cfg, &usermgmt.Options{Sink: sink, Mailer: fastMailer})
	if err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)
	t.Cleanup(client.CloseIdleConnections)
	s := &system{app: app, base: "http://" + app.HTTPAddr(), sink: sink}

	u := register(t, s, "Barbara", "barbara@example.com", http.StatusAccepted)
	// The outbox relays user_registered to the Recorder, which keeps it.
	var ev troupe.Event[users.RegisteredV1]
	poll(t, "user_registered to be relayed", func() bool {
		evs := troupetest.Events(t, rec.Published(), users.Registered)
		if len(evs) == 1 {
			ev = evs[0]
		}
		return len(evs) == 1
	})
	if ev.Data.UserID != u.ID {
		t.Fatalf("relayed user_registered is for %s, want %s", ev.Data.UserID, u.ID)
	}

	deliver := func(attempt int) troupetest.Result {
		return troupetest.Deliver(t, app, "mailer.send-welcome", ev.Data,
			troupetest.WithID(ev.ID), troupetest.WithCorrelationID(ev.CorrelationID), troupetest.WithAttempt(attempt))
	}
	if res := deliver(1); res.Err != nil {
		t.Fatalf("first delivery: %v", res.Err)
	}
	if m := sink.Mails(u.Email); len(m) != 1 {
		t.Fatalf("after the first delivery %d mails, want 1", len(m))
	}
	for attempt := 2; attempt <= 3; attempt++ {
		if res := deliver(attempt); res.Err != nil {
			t.Fatalf("redelivery %d: %v", attempt, res.Err)
		}
	}
	if m := sink.Mails(u.Email); len(m) != 1 {
		t.Errorf("after redeliveries %d mails, want still 1: %+v", len(m), m)
	}
	// welcome_mail_sent went into the outbox once.
	poll(t, "welcome_mail_sent to be relayed", func() bool {
		return len(troupetest.Events(t, rec.Published(), mailer.WelcomeMailSent)) >= 1
	})
	// Once the mailer's outbox is empty, everything the handler wrote has
	// been published.
	db, err := outbox.OpenSQLite(filepath.Join(cfg.DataDir, "mailer.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mob, err := outbox.New(db, outbox.Options{Prefix: "mailer"})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "the mailer's outbox to drain", func() bool { n, err := mob.Pending(t.Context()); return err == nil && n == 0 })
	if n := len(troupetest.Events(t, rec.Published(), mailer.WelcomeMailSent)); n != 1 {
		t.Errorf("%d welcome_mail_sent events, want 1", n)
	}
}
