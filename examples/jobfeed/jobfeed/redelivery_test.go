package jobfeed_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/examples/jobfeed/notification"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/examples/jobfeed/profile"
	"github.com/troupe-go/troupe/examples/jobfeed/recommendation"
	"github.com/troupe-go/troupe/troupetest"
)

// Delivery is at least once: every handler of the job feed meets the same
// event twice, as after a lost acknowledgement, and nothing happens twice.
// The app runs on a Recorder, so the test hands each event to one
// subscription and reads what the outboxes published.
func TestRedeliveredEventsDoNothingTwice(t *testing.T) {
	rec := troupetest.NewRecorder()
	app, err := jobfeed.NewApp(troupetest.Config(t, troupe.Config{Transport: rec, HTTPAddr: "127.0.0.1:0"}),
		&jobfeed.Options{PortalURL: "http://127.0.0.1:1"}) // profile is not exercised here
	if err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)
	t.Cleanup(client.CloseIdleConnections)
	base := "http://" + app.HTTPAddr()

	twice := func(sub string, deliver func(attempt int) troupetest.Result) {
		t.Helper()
		for attempt := 1; attempt <= 2; attempt++ {
			if res := deliver(attempt); res.Err != nil {
				t.Fatalf("%s, attempt %d: %v", sub, attempt, res.Err)
			}
		}
	}
	found := func() []troupe.Event[recommendation.OpenJobsFoundV1] {
		return troupetest.Events(t, rec.Published(), recommendation.OpenJobsFound)
	}

	// The recommendation service: a job, then a profile, each twice.
	job := portal.Job{ID: "job-1", Title: "Go developer", Company: "Acme", Location: "remote", Skills: []string{"go"}, PostedAt: time.Now()}
	twice("recommendation.match-job", func(n int) troupetest.Result {
		return troupetest.Deliver(t, app, "recommendation.match-job", job, troupetest.WithID("job-posted-1"), troupetest.WithAttempt(n))
	})
	created := profile.CreatedV1{CandidateID: "cand-1", Name: "Ada", Email: "ada@example.com",
		Preferences: portal.Preferences{Frequency: portal.Instant}, Skills: []string{"go"}, YearsOfExperience: 3}
	twice("recommendation.match-profile", func(n int) troupetest.Result {
		return troupetest.Deliver(t, app, "recommendation.match-profile", created, troupetest.WithID("profile-1"), troupetest.WithAttempt(n))
	})
	// The profile again under a new id, as a profile service that
	// published twice would: the match was announced already.
	troupetest.Deliver(t, app, "recommendation.match-profile", created, troupetest.WithID("profile-1-again"))
	evs := poll(t, "open_jobs_found from the outbox", found, func(evs []troupe.Event[recommendation.OpenJobsFoundV1]) bool { return len(evs) > 0 })
	if len(evs) != 1 || evs[0].Data.CandidateID != "cand-1" || len(evs[0].Data.Jobs) != 1 || evs[0].Data.Jobs[0].JobID != "job-1" {
		t.Fatalf("the recommendation service published %+v, want one open_jobs_found for cand-1 and job-1", evs)
	}

	// The notification service and the portal's read model: the same
	// open_jobs_found twice each.
	ev := evs[0].Data
	twice("notification.notify", func(n int) troupetest.Result {
		return troupetest.Deliver(t, app, "notification.notify", ev, troupetest.WithID("found-1"), troupetest.WithAttempt(n))
	})
	daily := ev
	daily.CandidateID, daily.Preferences.Frequency = "cand-2", portal.Daily
	twice("notification.notify (daily)", func(n int) troupetest.Result {
		return troupetest.Deliver(t, app, "notification.notify", daily, troupetest.WithID("found-2"), troupetest.WithAttempt(n))
	})
	if s := sent(t, base, ""); s.Count != 1 || s.Messages[0].CandidateID != "cand-1" || s.Waiting[portal.Daily] != 1 {
		t.Errorf("after each event twice, the notification service decided %d messages and holds %v waiting; want 1 and 1 daily: %+v", s.Count, s.Waiting, s)
	}
	// The message is sent by its message_due event; twice, it is sent once.
	due := troupetest.Events(t, rec.Published(), notification.MessageDue)
	if len(due) != 1 {
		t.Fatalf("the notification service published %d message_due events, want 1", len(due))
	}
	twice("notification.send", func(n int) troupetest.Result {
		return troupetest.Deliver(t, app, "notification.send", due[0].Data, troupetest.WithID(due[0].ID), troupetest.WithAttempt(n))
	})
	if s := sent(t, base, ""); s.ByStatus[notification.StatusSent] != 1 || s.Stuck != 0 || s.Messenger.Messages != 1 || s.Messenger.SentTwice != 0 {
		t.Errorf("after message_due twice: %+v, messenger %+v; want 1 sent, the messenger's 1 message", s.Counts, s.Messenger)
	}
	twice("portal.view-matches", func(n int) troupetest.Result {
		return troupetest.Deliver(t, app, "portal.view-matches", ev, troupetest.WithID("found-1"), troupetest.WithAttempt(n))
	})
	twice("portal.view-profiles", func(n int) troupetest.Result {
		return troupetest.Deliver(t, app, "portal.view-profiles", created, troupetest.WithID("profile-1"), troupetest.WithAttempt(n))
	})
	if st := viewStats(t, base); st.EventsApplied != 2 || st.Profiles != 1 || st.Matches != 1 {
		t.Errorf("after each event twice, the read model is %+v; want 2 events, 1 profile, 1 match", st)
	}
}

// The profile service fetches what candidate_registered does not carry
// from the portal. While the portal fails, the event is retried; a portal
// that does not know the candidate ends the registration as
// profile_failed, with the reason (troupe.OnFailure), instead of retrying
// for nothing or leaving it in the dead letters.
func TestProfileFetchIsRetriedOrFails(t *testing.T) {
	// A gateway in front of the portal: it fails the first two fetches,
	// then passes them on, until told to answer 404.
	var (
		mu       sync.Mutex
		target   *url.URL
		fetches  atomic.Int32
		notFound atomic.Bool
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := fetches.Add(1)
		switch {
		case notFound.Load():
			http.Error(w, `{"error":"no such candidate"}`, http.StatusNotFound)
		case n <= 2:
			http.Error(w, `{"error":"down for maintenance"}`, http.StatusServiceUnavailable)
		default:
			mu.Lock()
			u := target
			mu.Unlock()
			httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
		}
	}))
	defer gw.Close()

	app, base := startApp(t, &jobfeed.Options{PortalURL: gw.URL}, nil)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	target = u
	mu.Unlock()

	id := register(t, base, "Ada", portal.Weekly, "Go, 3 years")
	c := poll(t, "the profile after two failed fetches", func() portal.Candidate { return candidate(t, base, id) },
		func(c portal.Candidate) bool { return c.Status == "profiled" })
	if n := fetches.Load(); n != 3 || c.Profile.YearsOfExperience != 3 {
		t.Errorf("profiled after %d fetches as %+v; want 3 fetches", n, c.Profile)
	}

	notFound.Store(true)
	lost := register(t, base, "Bob", portal.Weekly, "Go, 3 years")
	bob := poll(t, "Bob's registration to fail", func() portal.Candidate { return candidate(t, base, lost) },
		func(c portal.Candidate) bool { return c.Status != portal.StatusRegistered })
	if bob.Status != portal.StatusProfileFailed || !strings.Contains(bob.Failure, "does not know candidate "+lost) || bob.Profile != nil {
		t.Errorf("Bob is %+v; want profile_failed, saying the portal does not know him", bob)
	}
	if n := fetches.Load(); n != 4 {
		t.Errorf("%d fetches in all, want 4: a 404 is not retried", n)
	}
	var list portal.CandidateList
	getJSON(t, base+"/candidates", &list)
	if list.Count != 2 || list.ByStatus[portal.StatusProfiled] != 1 || list.ByStatus[portal.StatusProfileFailed] != 1 || list.Terminal != 2 || list.Stuck != 0 {
		t.Errorf("GET /candidates counts %+v; want 1 profiled, 1 profile_failed, both terminal", list.Counts)
	}
	if dl, err := app.DeadLetters(t.Context(), "profile.read-resume", 10); err != nil || len(dl) != 0 {
		t.Errorf("dead letters %+v (%v); want none: the failure is compensated", dl, err)
	}
}
