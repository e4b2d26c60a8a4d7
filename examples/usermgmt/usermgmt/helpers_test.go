package usermgmt_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/usermgmt/mailer"
	"github.com/troupe-go/troupe/examples/usermgmt/mailsink"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
	"github.com/troupe-go/troupe/troupetest"
)

// waitTimeout bounds every wait of these tests; the flow itself takes
// milliseconds, a recovery from a mail server outage about a second.
const waitTimeout = 30 * time.Second

var client = &http.Client{Timeout: 40 * time.Second}

// system is one running user-management app under test.
type system struct {
	app  *troupe.App
	base string
	sink *mailsink.Sink
	dir  string
}

// fastMailer retries quickly, so the failure stories take a second.
var fastMailer = mailer.Options{
	MinBackoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
	BreakerFailures: 2, BreakerCooldown: 200 * time.Millisecond, Timeout: 5 * time.Second,
}

// startSystem starts the app on its own embedded broker, data directory,
// mail sink and free HTTP port. declare, if not nil, may add to the app
// before it starts (observers).
func startSystem(t *testing.T, opts *usermgmt.Options, declare func(*troupe.App)) *system {
	t.Helper()
	sink := mailsink.New("127.0.0.1:0")
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Stop() })
	opts.Sink = sink
	if opts.Mailer.MinBackoff == 0 {
		opts.Mailer = fastMailer
	}
	dir := t.TempDir()
	app, err := usermgmt.NewApp(troupetest.Config(t, troupe.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0"}), opts)
	if err != nil {
		t.Fatal(err)
	}
	if declare != nil {
		declare(app)
	}
	troupetest.Start(t, app)
	// Runs before troupetest's stop: a connection the client dialled but
	// never used would hold the server's shutdown.
	t.Cleanup(client.CloseIdleConnections)
	return &system{app: app, base: "http://" + app.HTTPAddr(), sink: sink, dir: dir}
}

// do sends a request with the given headers ("Name: value") and returns
// the status, the headers and the body.
func do(t *testing.T, method, url, body string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// register posts a user and checks the answer has the wanted status and
// describes the user; it returns the answer.
func register(t *testing.T, s *system, name, email string, want int, headers ...string) users.User {
	t.Helper()
	status, h, b := do(t, "POST", s.base+"/users", fmt.Sprintf(`{"name":%q,"email":%q}`, name, email), headers...)
	if status != want {
		t.Fatalf("POST /users %s: %d, want %d: %s", email, status, want, b)
	}
	var u users.User
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("POST /users: %v in %s", err, b)
	}
	if u.ID == "" || u.Name != name || u.Email != strings.ToLower(email) || u.Links.Self != "/users/"+u.ID || h.Get("Location") != u.Links.Self || u.WelcomeMail == nil {
		t.Fatalf("POST /users answered %s with Location %q", b, h.Get("Location"))
	}
	return u
}

// waitMails waits until the sink holds at least n mails to addr and
// returns them.
func waitMails(t *testing.T, sink *mailsink.Sink, addr string, n int) []mailsink.Mail {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		arrived := sink.Arrived()
		if m := sink.Mails(addr); len(m) >= n {
			return m
		}
		select {
		case <-arrived:
		case <-deadline:
			t.Fatalf("%d mails to %s after %s, want %d", len(sink.Mails(addr)), addr, waitTimeout, n)
		}
	}
}

// poll calls ready until it reports true or waitTimeout passes.
func poll(t *testing.T, what string, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !ready() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// subscription returns the app's subscription "service.name".
func subscription(t *testing.T, app *troupe.App, name string) *troupe.Subscription {
	t.Helper()
	for _, s := range app.Services() {
		for _, sub := range s.Subscriptions() {
			if sub.String() == name {
				return sub
			}
		}
	}
	t.Fatalf("no subscription %s", name)
	return nil
}

// noDeadLetters checks that no subscription of the app dead-lettered
// anything.
func noDeadLetters(t *testing.T, app *troupe.App) {
	t.Helper()
	for _, s := range app.Services() {
		for _, sub := range s.Subscriptions() {
			dl, err := app.DeadLetters(context.Background(), sub.String(), 10)
			if err != nil {
				t.Errorf("dead letters of %s: %v", sub, err)
			}
			for _, d := range dl {
				t.Errorf("dead letter in %s: %+v", sub, d)
			}
		}
	}
}

// countRows counts the rows of table in db.
func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// needService skips the test when a service it needs is absent, except in
// CI, where it fails.
func needService(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: %v (CI needs it)", what, err)
	}
	t.Skipf("no %s (%v); start it to run this test", what, err)
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
