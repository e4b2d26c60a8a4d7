package usermgmt_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/usermgmt/coupons"
	"github.com/troupe-go/troupe/examples/usermgmt/mailer"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
	"github.com/troupe-go/troupe/troupetest"
)

// TestRegisterAndWait is the 201 path: with Prefer: wait the answer comes
// once the welcome mail is out, and says so.
func TestRegisterAndWait(t *testing.T) {
	var registered *troupetest.Observer[users.RegisteredV1]
	var issued *troupetest.Observer[coupons.IssuedV1]
	s := startSystem(t, &usermgmt.Options{}, func(app *troupe.App) {
		registered = troupetest.Observe(t, app, users.Registered)
		issued = troupetest.Observe(t, app, coupons.Issued)
	})

	u := register(t, s, "Ada Lovelace", "ada@Example.COM", http.StatusCreated, "Prefer: wait=10")
	if u.Email != "ada@example.com" {
		t.Errorf("email stored as %q, want the domain in lower case", u.Email)
	}
	if u.WelcomeMail.Status != "sent" || u.WelcomeMail.Event == nil || u.WelcomeMail.Event.Type != "welcome_mail_sent.v1" {
		t.Fatalf("welcome_mail = %+v, want sent with its event", u.WelcomeMail)
	}
	var sent mailer.WelcomeMailSentV1
	if err := json.Unmarshal(u.WelcomeMail.Event.Data, &sent); err != nil || sent.UserID != u.ID || sent.Email != u.Email || sent.MessageID == "" {
		t.Fatalf("welcome_mail_sent data %s (%v)", u.WelcomeMail.Event.Data, err)
	}

	// The mail is in the sink already: the answer came after it.
	mails := s.sink.Mails(u.Email)
	if len(mails) != 1 {
		t.Fatalf("%d mails to %s when POST answered, want 1: %+v", len(mails), u.Email, mails)
	}
	if m := mails[0]; m.MessageID != sent.MessageID || m.Subject != "Welcome, Ada Lovelace!" || m.From != mailer.DefaultFrom {
		t.Errorf("mail = %+v, want Message-ID %s, the welcome subject, from %s", m, sent.MessageID, mailer.DefaultFrom)
	}

	// The events of one registration share its correlation id, the user's.
	ev := registered.WaitCorrelation(t, u.ID)
	if ev.Data.UserID != u.ID || ev.Data.Name != u.Name || ev.Data.Email != u.Email {
		t.Errorf("user_registered = %+v, want the user %+v", ev.Data, u)
	}
	cp := issued.WaitCorrelation(t, u.ID)
	if cp.Data.UserID != u.ID || cp.Data.PercentOff != coupons.PercentOff || cp.CausationID != ev.ID {
		t.Errorf("coupon_issued = %+v caused by %s, want a coupon for %s caused by user_registered %s", cp.Data, cp.CausationID, u.ID, ev.ID)
	}

	status, _, b := do(t, "GET", s.base+"/users/"+u.ID, "")
	var got users.User
	if err := json.Unmarshal(b, &got); err != nil || status != http.StatusOK || got.ID != u.ID || got.Email != u.Email || !got.CreatedAt.Equal(u.CreatedAt) {
		t.Errorf("GET /users/%s: %d %s (%v), want the user", u.ID, status, b, err)
	}
	status, _, b = do(t, "GET", s.base+"/coupons/"+u.ID, "")
	var c coupons.Coupon
	if err := json.Unmarshal(b, &c); err != nil || status != http.StatusOK || c.Code != cp.Data.Code || c.Status != "active" {
		t.Errorf("GET /coupons/%s: %d %s (%v), want code %s active", u.ID, status, b, err, cp.Data.Code)
	}
	noDeadLetters(t, s.app)
}

// TestRegisterAccepted is the 202 path: the user exists at once, the
// welcome mail follows.
func TestRegisterAccepted(t *testing.T) {
	var sent *troupetest.Observer[mailer.WelcomeMailSentV1]
	s := startSystem(t, &usermgmt.Options{}, func(app *troupe.App) {
		sent = troupetest.Observe(t, app, mailer.WelcomeMailSent)
	})
	u := register(t, s, "Grace", "grace@example.com", http.StatusAccepted)
	if u.WelcomeMail.Status != "pending" || u.WelcomeMail.Event != nil {
		t.Errorf("welcome_mail = %+v, want pending", u.WelcomeMail)
	}
	// Committed before the answer: readable at once.
	if status, _, b := do(t, "GET", s.base+u.Links.Self, ""); status != http.StatusOK {
		t.Fatalf("GET %s right after 202: %d %s", u.Links.Self, status, b)
	}
	ev := sent.WaitCorrelation(t, u.ID)
	mails := waitMails(t, s.sink, u.Email, 1)
	if len(mails) != 1 || mails[0].MessageID != ev.Data.MessageID {
		t.Errorf("mails to %s: %+v, want one with Message-ID %s", u.Email, mails, ev.Data.MessageID)
	}
}

// TestDeleteUser deletes a user after its welcome: the user is gone, its
// coupon revoked, and user_deleted was published once.
func TestDeleteUser(t *testing.T) {
	var deleted *troupetest.Observer[users.DeletedV1]
	s := startSystem(t, &usermgmt.Options{}, func(app *troupe.App) {
		deleted = troupetest.Observe(t, app, users.Deleted)
	})
	u := register(t, s, "Alan", "alan@example.com", http.StatusCreated, "Prefer: wait=10")
	poll(t, "the coupon", func() bool {
		status, _, _ := do(t, "GET", s.base+"/coupons/"+u.ID, "")
		return status == http.StatusOK
	})
	if status, _, b := do(t, "DELETE", s.base+"/users/"+u.ID, ""); status != http.StatusNoContent || len(b) != 0 {
		t.Fatalf("DELETE: %d %s, want 204 and no body", status, b)
	}
	if status, _, b := do(t, "GET", s.base+"/users/"+u.ID, ""); status != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d %s, want 404", status, b)
	}
	if status, _, b := do(t, "DELETE", s.base+"/users/"+u.ID, ""); status != http.StatusNotFound {
		t.Errorf("second DELETE: %d %s, want 404", status, b)
	}
	ev := deleted.Wait(t, func(e troupe.Event[users.DeletedV1]) bool { return e.Data.UserID == u.ID })
	poll(t, "the coupon to be revoked", func() bool {
		_, _, b := do(t, "GET", s.base+"/coupons/"+u.ID, "")
		var c coupons.Coupon
		return json.Unmarshal(b, &c) == nil && c.Status == "revoked"
	})
	if n := len(deleted.Events()); n != 1 {
		t.Errorf("%d user_deleted events, want 1 (the second DELETE must publish nothing); first %+v", n, ev)
	}
	// The address is free again.
	register(t, s, "Alan", "alan@example.com", http.StatusAccepted)
}

// TestCouponsChangeNothingInUsers checks the extension story: adding the
// coupon service adds subscribers to user_registered and user_deleted and
// leaves the user service's declaration as it was.
func TestCouponsChangeNothingInUsers(t *testing.T) {
	declare := func(without bool) *troupe.App {
		app, err := usermgmt.NewApp(troupe.Config{Name: "usermgmt"}, &usermgmt.Options{WithoutCoupons: without})
		if err != nil {
			t.Fatal(err)
		}
		if err := app.Validate(); err != nil {
			t.Fatal(err)
		}
		return app
	}
	type decl struct {
		topics, subs, routes []string
	}
	describe := func(app *troupe.App, service string) (decl, bool) {
		for _, s := range app.Services() {
			if s.Name() != service {
				continue
			}
			var d decl
			for _, tp := range s.Topics() {
				d.topics = append(d.topics, tp.Name())
			}
			for _, sub := range s.Subscriptions() {
				d.subs = append(d.subs, sub.String()+"<-"+sub.Topic())
			}
			d.routes = s.Routes()
			return d, true
		}
		return decl{}, false
	}
	before, after := declare(true), declare(false)
	ub, _ := describe(before, users.ServiceName)
	ua, _ := describe(after, users.ServiceName)
	if !slices.Equal(ub.topics, ua.topics) || !slices.Equal(ub.subs, ua.subs) || !slices.Equal(ub.routes, ua.routes) {
		t.Errorf("the user service changed with the coupons: before %+v, after %+v", ub, ua)
	}
	if _, ok := describe(before, coupons.ServiceName); ok {
		t.Errorf("the app without coupons has a coupon service")
	}
	c, ok := describe(after, coupons.ServiceName)
	want := []string{"coupons.issue-welcome-coupon<-user_registered.v1", "coupons.revoke-coupon<-user_deleted.v1"}
	if !ok || !slices.Equal(c.subs, want) {
		t.Errorf("coupon subscriptions %v, want %v", c.subs, want)
	}
}

// TestNonASCIIName: a name outside ASCII reaches the mail's headers
// encoded, and the sink decodes it back.
func TestNonASCIIName(t *testing.T) {
	s := startSystem(t, &usermgmt.Options{}, nil)
	u := register(t, s, "Zoë Ångström 张", "zoe@example.com", http.StatusCreated, "Prefer: wait=10")
	mails := s.sink.Mails(u.Email)
	if len(mails) != 1 || mails[0].Subject != "Welcome, Zoë Ångström 张!" || !strings.Contains(mails[0].Body, "Hello Zoë Ångström 张,") {
		t.Errorf("mails = %+v, want one greeting Zoë Ångström 张", mails)
	}
}
