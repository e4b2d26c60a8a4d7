package jobfeed_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/apitest"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/examples/jobfeed/notification"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/troupetest"
)

// waitTimeout bounds every wait of these tests; a flow takes milliseconds.
const waitTimeout = 30 * time.Second

var client = apitest.Client

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// startApp starts the job feed on its own embedded broker, data directory
// and free port, and returns it with its base URL. declare, if not nil,
// may add to the app before it starts (an observer, a witness).
func startApp(t *testing.T, opts *jobfeed.Options, declare func(*troupe.App)) (*troupe.App, string) {
	t.Helper()
	app, err := jobfeed.NewApp(troupetest.Config(t, troupe.Config{HTTPAddr: "127.0.0.1:0", Logger: testLogger()}), opts)
	if err != nil {
		t.Fatal(err)
	}
	if declare != nil {
		declare(app)
	}
	troupetest.Start(t, app)
	// Registered after Start's cleanup, so it runs first: a connection the
	// client dialled but never used would hold the server's shutdown.
	t.Cleanup(client.CloseIdleConnections)
	return app, "http://" + app.HTTPAddr()
}

// The calls of these tests, shared with the other examples.
var (
	do      = apitest.Do
	getJSON = apitest.GetJSON
)

// post POSTs body to base+path, expects 201 and returns the new id.
func post(t testing.TB, base, path, body string) string {
	t.Helper()
	status, b, h := do(t, "POST", base+path, body)
	if status != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", path, status, b)
	}
	var c portal.Created
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" || c.Links.Self != path+"/"+c.ID || h.Get("Location") != c.Links.Self {
		t.Fatalf("POST %s answered %s, Location %q (%v)", path, b, h.Get("Location"), err)
	}
	return c.ID
}

// candidateBody is a registration; resume decides the skills and years.
func candidateBody(name string, f portal.Frequency, resume string, locations ...string) string {
	if locations == nil {
		locations = []string{}
	}
	locs, _ := json.Marshal(locations)
	return fmt.Sprintf(`{"name":%q,"email":%q,"preferences":{"frequency":%q,"locations":%s},"resume":%q}`,
		name, strings.ToLower(name)+"@example.com", f, locs, resume)
}

func register(t testing.TB, base, name string, f portal.Frequency, resume string, locations ...string) string {
	t.Helper()
	return post(t, base, "/candidates", candidateBody(name, f, resume, locations...))
}

func jobBody(title, location string, minYears int, skills ...string) string {
	sk, _ := json.Marshal(skills)
	return fmt.Sprintf(`{"title":%q,"company":"Acme","location":%q,"skills":%s,"min_years":%d}`, title, location, sk, minYears)
}

func postJob(t testing.TB, base, title, location string, minYears int, skills ...string) string {
	t.Helper()
	return post(t, base, "/jobs", jobBody(title, location, minYears, skills...))
}

// poll calls get until done reports true, and fails the test with the
// last value after waitTimeout.
func poll[T any](t testing.TB, what string, get func() T, done func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		v := get()
		if done(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %+v", waitTimeout, what, v)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func candidate(t testing.TB, base, id string) portal.Candidate {
	t.Helper()
	var c portal.Candidate
	getJSON(t, base+"/candidates/"+id, &c)
	return c
}

// waitMatches waits until candidate id is profiled with n matches.
func waitMatches(t testing.TB, base, id string, n int) portal.Candidate {
	t.Helper()
	return poll(t, fmt.Sprintf("candidate %s to have %d matches", id, n),
		func() portal.Candidate { return candidate(t, base, id) },
		func(c portal.Candidate) bool { return c.Status == "profiled" && len(c.Matches) >= n })
}

func jobIDs(ms []portal.Match) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.JobID
	}
	return ids
}

// sent returns the notification service's messages (to candidate id, or
// to everyone for "") and what waits for a digest.
func sent(t testing.TB, base, id string) notification.Sent {
	t.Helper()
	var s notification.Sent
	url := base + "/notifications"
	if id != "" {
		url += "?candidate=" + id
	}
	getJSON(t, url, &s)
	return s
}
