package usermgmt_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/troupe-go/troupe/examples/usermgmt/mailer"
	"github.com/troupe-go/troupe/examples/usermgmt/mailsink"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
)

// registrations reads GET /users.
func registrations(t *testing.T, s *system) users.List {
	t.Helper()
	status, _, b := do(t, "GET", s.base+"/users", "")
	var l users.List
	if err := json.Unmarshal(b, &l); err != nil || status != http.StatusOK {
		t.Fatalf("GET /users: %d %s (%v)", status, b, err)
	}
	return l
}

// Each registration ends in one terminal state, the first outcome of its
// welcome mail, which GET /users/{id} shows and GET /users counts; a
// deleted user's registration stays counted.
func TestRegistrationsEndInOneState(t *testing.T) {
	s := startSystem(t, &usermgmt.Options{}, nil)
	sent := register(t, s, "Ada", "ada@example.com", http.StatusCreated, "Prefer: wait=10")
	failed := register(t, s, "Nobody", "nobody@"+mailsink.RejectDomain, http.StatusCreated, "Prefer: wait=10")
	for _, c := range []struct {
		u    users.User
		want string
	}{{sent, "sent"}, {failed, "failed"}} {
		poll(t, "the status of "+c.u.ID, func() bool {
			_, _, b := do(t, "GET", s.base+"/users/"+c.u.ID, "")
			var u users.User
			return json.Unmarshal(b, &u) == nil && u.WelcomeMail != nil && u.WelcomeMail.Status == c.want
		})
	}
	if status, _, b := do(t, "DELETE", s.base+sent.Links.Self, ""); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, b)
	}
	poll(t, "both registrations to end", func() bool { return registrations(t, s).Settled() })
	l := registrations(t, s)
	if l.Count != 2 || l.ByStatus["sent"] != 1 || l.ByStatus["failed"] != 1 || l.Terminal != 2 || l.Stuck != 0 || !l.Settled() {
		t.Errorf("GET /users counts %+v, want 1 sent, 1 failed, both terminal", l.Counts)
	}
	if len(l.Registrations) != 2 || l.Registrations[0].UserID != failed.ID || l.Registrations[1].Status != "sent" {
		t.Errorf("GET /users lists %+v, want the two registrations, newest first", l.Registrations)
	}
}

// A POST /users sent again with its Idempotency-Key answers with the user
// the first one made and registers nobody new, mails nobody twice.
func TestIdempotencyKeyMakesRetriesSafe(t *testing.T) {
	s := startSystem(t, &usermgmt.Options{}, nil)
	first := register(t, s, "Ada", "ada@example.com", http.StatusCreated, "Prefer: wait=10", "Idempotency-Key: ada-1")
	again := register(t, s, "Ada", "ada@example.com", http.StatusAccepted, "Idempotency-Key: ada-1")
	// The status is the user service's record of the outcome, which may
	// follow the answer the first POST waited for by a moment.
	if st := again.WelcomeMail.Status; again.ID != first.ID || !again.Replayed || first.Replayed || st != "sent" && st != users.StatusPending {
		t.Errorf("the retry answered %+v (welcome mail %s) after %+v; want the same user, replayed", again, st, first)
	}
	if l := registrations(t, s); l.Count != 1 {
		t.Errorf("%d registrations, want 1", l.Count)
	}
	if m := s.sink.Mails("ada@example.com"); len(m) != 1 {
		t.Errorf("%d mails to Ada, want 1", len(m))
	}
}

// A mail server that stays down through every attempt ends the
// registration as failed (troupe.OnFailure), not in the dead letters.
func TestMailServerDownForGood(t *testing.T) {
	o := &usermgmt.Options{Mailer: fastMailer}
	o.Mailer.MaxAttempts, o.Mailer.BreakerFailures = 3, 100
	s := startSystem(t, o, nil)
	if err := s.sink.Stop(); err != nil {
		t.Fatal(err)
	}
	u := register(t, s, "Ada", "ada@example.com", http.StatusCreated, "Prefer: wait=20")
	if u.WelcomeMail.Status != "failed" || u.WelcomeMail.Event == nil {
		t.Fatalf("welcome_mail = %+v, want failed", u.WelcomeMail)
	}
	var f mailer.WelcomeMailFailedV1
	if err := json.Unmarshal(u.WelcomeMail.Event.Data, &f); err != nil || f.UserID != u.ID || f.Reason == "" {
		t.Errorf("welcome_mail_failed data %s (%v)", u.WelcomeMail.Event.Data, err)
	}
	poll(t, "the registration to end", func() bool { return registrations(t, s).Settled() })
	if l := registrations(t, s); l.ByStatus["failed"] != 1 || l.Stuck != 0 {
		t.Errorf("GET /users counts %+v, want 1 failed", l.Counts)
	}
	noDeadLetters(t, s.app)
}
