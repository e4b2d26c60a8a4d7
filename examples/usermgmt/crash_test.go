//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/internal/proctest"
)

// The crash tests register users over HTTP, each POST with an
// Idempotency-Key and retried until it is accepted, while kill -9 hits the
// program; then, through the HTTP API only, they check that every accepted
// registration ended in exactly one terminal state, none was lost, and the
// mail sink (whose record survives the kills) got one welcome mail per
// user, none twice.

// placeRegistrations registers a user per address in emails from four
// goroutines, retrying each (connection refused while the API is down, a
// 503 from a database mid-restart) with the same Idempotency-Key until it
// is accepted, and notes each user's id in ids. Any other answer fails the
// test.
func placeRegistrations(t *testing.T, api string, emails []string, ids map[string]string, mu *sync.Mutex, accepted *atomic.Int64) {
	t.Helper()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(emails) {
					return
				}
				email := emails[i]
				deadline := time.Now().Add(2 * time.Minute)
				for {
					status, body, err := call("POST", api+"/users", fmt.Sprintf(`{"name":"User %d","email":%q}`, i, email), "Idempotency-Key: reg-"+email)
					var u struct{ ID string }
					if err == nil && (status == http.StatusAccepted || status == http.StatusCreated) && json.Unmarshal(body, &u) == nil && u.ID != "" {
						mu.Lock()
						ids[email] = u.ID
						mu.Unlock()
						accepted.Add(1)
						break
					}
					if err == nil && status != http.StatusServiceUnavailable && status != http.StatusInternalServerError {
						errs <- fmt.Errorf("POST /users %s: %d %s", email, status, body)
						return
					}
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("POST /users %s not accepted within 2 minutes; last %d %s (%v)", email, status, body, err)
						return
					}
					time.Sleep(20 * time.Millisecond) // the program is restarting: retry with the same key
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// registrationList is the part of GET /users the tests read.
type registrationList struct {
	Count    int            `json:"count"`
	ByStatus map[string]int `json:"by_status"`
	Terminal int            `json:"terminal"`
	Stuck    int            `json:"stuck"`
}

// sinkBook is the part of GET /mail the tests read.
type sinkBook struct {
	Mails []struct {
		To      []string `json:"to"`
		Repeats int      `json:"repeats"`
	} `json:"mails"`
	RepeatedRequests int `json:"repeated_requests"`
	SentTwice        int `json:"sent_twice"`
}

func getJSON(url string, v any) bool {
	status, b, err := call("GET", url, "")
	return err == nil && status == http.StatusOK && json.Unmarshal(b, v) == nil
}

// outcome is one row of the crash table.
type outcome struct {
	accepted, completed, compensated, lost, double, repeats int
	problems                                                []string
}

// settleRegistrations waits until GET /users counts every registration of
// ids terminal, then checks each through the API against want (email →
// "sent" or "skipped"): the status, and the mails the sink holds.
func settleRegistrations(t *testing.T, api, sinkBase string, ids, want map[string]string, procs func() []*proctest.Process) outcome {
	t.Helper()
	var last registrationList
	began := time.Now()
	proctest.WaitFor(t, "every registration to end", 3*time.Minute, procs(), func() bool {
		var l registrationList
		if !getJSON(api+"/users", &l) {
			return false
		}
		last = l
		return l.Count == len(ids) && l.Stuck == 0 && l.Terminal == l.Count
	})
	t.Logf("settled in %s: %+v", time.Since(began).Round(time.Millisecond), last)

	var o outcome
	bad := func(format string, args ...any) { o.problems = append(o.problems, fmt.Sprintf(format, args...)) }
	var book sinkBook
	if !getJSON(sinkBase+"/mail", &book) {
		bad("GET /mail failed")
		return o
	}
	mails := make(map[string]int)
	for _, m := range book.Mails {
		for _, to := range m.To {
			mails[to]++
		}
	}
	o.repeats = book.RepeatedRequests
	o.double += book.SentTwice
	wantStatus := make(map[string]int)
	for email, id := range ids {
		o.accepted++
		w := want[email]
		wantStatus[w]++
		switch {
		case mails[email] > 1:
			o.double++
			bad("%s got %d welcome mails", email, mails[email])
		case w == "sent" && mails[email] == 0:
			o.lost++ // the mail, if not the user
			bad("%s got no welcome mail", email)
		case w != "sent" && mails[email] != 0:
			bad("%s got a welcome mail, want none (%s)", email, w)
		}
		if w == "skipped" {
			o.compensated++
			continue // the user is deleted: only the count shows its registration
		}
		var u struct {
			ID          string
			WelcomeMail *struct{ Status string } `json:"welcome_mail"`
		}
		status, b, err := call("GET", api+"/users/"+id, "")
		switch {
		case err != nil || status == http.StatusNotFound || json.Unmarshal(b, &u) != nil:
			o.lost++
			bad("user %s (%s) is gone: %d %s (%v)", id, email, status, b, err)
		case u.WelcomeMail == nil || u.WelcomeMail.Status != w:
			bad("user %s (%s): welcome mail %+v, want %s", id, email, u.WelcomeMail, w)
		default:
			o.completed++
		}
	}
	for st, n := range wantStatus {
		if last.ByStatus[st] != n {
			bad("GET /users counts %d %s, want %d", last.ByStatus[st], st, n)
		}
	}
	return o
}

func report(t *testing.T, mode string, o outcome, kills int) {
	t.Helper()
	tb := proctest.Table{Title: "usermgmt crash test", Header: []string{"mode", "accepted", "completed", "compensated", "lost", "double effects", "repeated SMTP deliveries", "kills"}}
	tb.Row(mode, o.accepted, o.completed, o.compensated, o.lost, o.double, o.repeats, kills)
	tb.Log(t)
	for i, p := range o.problems {
		if i == 20 {
			t.Errorf("… and %d more", len(o.problems)-20)
			break
		}
		t.Error(p)
	}
	if o.lost > 0 || o.double > 0 || o.completed+o.compensated != o.accepted {
		t.Errorf("%d accepted, %d completed, %d compensated, %d lost, %d double effects", o.accepted, o.completed, o.compensated, o.lost, o.double)
	}
}

// Every service in one process on the embedded broker, killed with
// SIGKILL at random moments while 500 users register, and restarted on the
// same data directory each time.
func TestCrashAllInOne(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	bin := build.Program(t)
	addr := proctest.FreeAddr(t)
	api := "http://" + addr
	p := proctest.StartCrashing(t, "usermgmt", bin, nil, func(*proctest.Process) bool { return proctest.Healthy(api) },
		"--http", addr, "--data", t.TempDir(), "--mail-sink", proctest.FreeAddr(t))
	const users, kills = 500, 6
	emails := make([]string, users)
	for i := range emails {
		emails[i] = fmt.Sprintf("aio%03d@example.com", i)
	}
	var (
		mu       sync.Mutex
		ids      = make(map[string]string)
		accepted atomic.Int64
	)
	done := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for k := range kills {
			// A random moment in each seventh of the load, or after it,
			// while the mailer still works through it.
			threshold := int64((k + 1) * users / (kills + 1))
			for accepted.Load() < threshold {
				select {
				case <-done:
					threshold = 0
				case <-time.After(5 * time.Millisecond):
				}
			}
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
			p.KillAndRestart(t)
		}
	}()
	began := time.Now()
	placeRegistrations(t, api, emails, ids, &mu, &accepted)
	close(done)
	<-killed
	t.Logf("registered %d with %d kills in %s", users, p.Kills(), time.Since(began).Round(time.Millisecond))
	want := make(map[string]string)
	for _, e := range emails {
		want[e] = "sent"
	}
	o := settleRegistrations(t, api, api, ids, want, func() []*proctest.Process { return []*proctest.Process{p.Current()} })
	report(t, "all-in-one, embedded", o, p.Kills())
	if p.Kills() < 5 {
		t.Errorf("%d kills, want at least 5", p.Kills())
	}
	client.CloseIdleConnections()
	p.Stop(t)
}
