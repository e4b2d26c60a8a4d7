package jobfeed_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/examples/jobfeed/profile"
	"github.com/troupe-go/troupe/examples/jobfeed/recommendation"
	"github.com/troupe-go/troupe/troupetest"
)

// A candidate signs up; the profile service reads the resume, the
// recommendation service finds the open jobs that suit, and the portal
// shows them, all by events. A job posted later is matched too.
func TestCandidateSeesMatchedJobs(t *testing.T) {
	var profiles *troupetest.Observer[profile.CreatedV1]
	var found *troupetest.Observer[recommendation.OpenJobsFoundV1]
	_, base := startApp(t, nil, func(app *troupe.App) {
		profiles = troupetest.Observe(t, app, profile.Created)
		found = troupetest.Observe(t, app, recommendation.OpenJobsFound)
	})

	berlin := postJob(t, base, "Backend engineer", "Berlin", 3, "go", "postgresql")
	remote := postJob(t, base, "Platform engineer", "remote", 5, "golang", "kubernetes", "terraform")
	postJob(t, base, "Data engineer", "Berlin", 2, "python", "spark")                    // skills do not fit
	postJob(t, base, "Staff engineer", "Berlin", 10, "go")                               // too senior
	postJob(t, base, "Go developer", "Lisbon", 1, "go")                                  // elsewhere
	operator := postJob(t, base, "Kubernetes operator", "remote", 0, "kubernetes", "go") // posted before, fits

	resume := "Backend developer. 6 years of experience with Go, PostgreSQL and Kubernetes (k8s), some Docker."
	id := register(t, base, "Ada", portal.Daily, resume, "Berlin", "Paris")

	c := waitMatches(t, base, id, 3)
	if c.Name != "Ada" || c.Email != "ada@example.com" || c.Resume != resume || c.Preferences.Frequency != portal.Daily ||
		!slices.Equal(c.Preferences.Locations, []string{"Berlin", "Paris"}) || c.RegisteredAt.IsZero() {
		t.Errorf("the registration reads back as %+v", c)
	}
	if c.Profile == nil || !slices.Equal(c.Profile.Skills, []string{"docker", "go", "kubernetes", "postgresql"}) || c.Profile.YearsOfExperience != 6 {
		t.Errorf("profile = %+v, want docker, go, kubernetes, postgresql and 6 years", c.Profile)
	}
	got := jobIDs(c.Matches)
	slices.Sort(got)
	var list portal.JobList
	getJSON(t, base+"/jobs", &list)
	if list.Count != 6 || len(list.Jobs) != 6 {
		t.Fatalf("GET /jobs lists %d jobs (count %d), want 6", len(list.Jobs), list.Count)
	}
	if list.Jobs[0].ID != operator {
		t.Errorf("GET /jobs lists %s first, want the newest, %s", list.Jobs[0].ID, operator)
	}
	want := []string{berlin, remote, operator}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("matches %v, want %v", got, want)
	}

	// The events of the registration form one business transaction with
	// the candidate's id as correlation id.
	p := profiles.WaitCorrelation(t, id)
	if p.Data.CandidateID != id || p.Data.YearsOfExperience != 6 || p.Data.Email != "ada@example.com" {
		t.Errorf("profile_created = %+v", p.Data)
	}
	// Each match is announced once, by the handler of whichever of the two
	// events (the profile, the job) came second: in the candidate's
	// transaction, caused by profile_created, or in the job's.
	f := found.WaitCorrelation(t, id)
	if f.CausationID != p.ID || f.Data.Preferences.Frequency != portal.Daily || len(f.Data.Jobs) == 0 {
		t.Errorf("open_jobs_found = %+v (causation %s), want jobs, caused by profile_created %s", f.Data, f.CausationID, p.ID)
	}
	var announced []string
	seen := make(map[string]bool) // delivery is at least once
	for _, ev := range found.Events() {
		if ev.Data.CandidateID != id || seen[ev.ID] {
			continue
		}
		seen[ev.ID] = true
		if ev.CorrelationID != id && !slices.Contains(want, ev.CorrelationID) {
			t.Errorf("open_jobs_found %s has correlation id %s, neither the candidate's nor a matched job's", ev.ID, ev.CorrelationID)
		}
		announced = append(announced, jobIDs(ev.Data.Jobs)...)
	}
	slices.Sort(announced)
	if !slices.Equal(announced, want) {
		t.Errorf("open_jobs_found announced %v, want each of %v once", announced, want)
	}

	// A job posted now reaches the candidate through the same services.
	later := postJob(t, base, "Go and Postgres engineer", "Paris", 4, "go", "postgresql", "redis")
	c = waitMatches(t, base, id, 4)
	if last := c.Matches[len(c.Matches)-1]; last.JobID != later || last.Title != "Go and Postgres engineer" || last.Location != "Paris" {
		t.Errorf("the newest match is %+v, want job %s", last, later)
	}
	lf := found.WaitCorrelation(t, later)
	if lf.Data.CandidateID != id || len(lf.Data.Jobs) != 1 || lf.Data.Jobs[0].JobID != later {
		t.Errorf("open_jobs_found for the new job = %+v", lf.Data)
	}

	// A candidate without the skills gets a profile and no match.
	other := register(t, base, "Bob", portal.Weekly, "Gardener for 20 years.")
	bob := poll(t, "Bob's profile", func() portal.Candidate { return candidate(t, base, other) },
		func(c portal.Candidate) bool { return c.Status == "profiled" })
	if len(bob.Matches) != 0 || len(bob.Profile.Skills) != 0 || bob.Profile.YearsOfExperience != 20 {
		t.Errorf("Bob = %+v", bob)
	}

	var job portal.Job
	getJSON(t, base+"/jobs/"+later, &job)
	if job.ID != later || !slices.Equal(job.Skills, []string{"go", "postgresql", "redis"}) || job.MinYears != 4 || job.PostedAt.IsZero() {
		t.Errorf("GET /jobs/%s = %+v", later, job)
	}
}

// The profile service needs to know where the portal is when it runs
// without it; the app says so at start instead of failing on the first
// event.
func TestProfileWithoutPortalNeedsItsURL(t *testing.T) {
	app, err := jobfeed.NewApp(troupetest.Config(t, troupe.Config{Services: []string{"profile"}, Logger: testLogger()}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	err = app.Start(ctx)
	if err == nil {
		_ = app.Stop(ctx)
		t.Fatal("the app started a profile service with no portal to fetch from")
	}
	_ = app.Stop(ctx)
	for _, w := range []string{"--portal-url", "JOBFEED_PORTAL_URL"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error %q does not mention %s", err, w)
		}
	}
	app, err = jobfeed.NewApp(troupetest.Config(t, troupe.Config{Services: []string{"profile"}, Logger: testLogger()}),
		&jobfeed.Options{PortalURL: "http://portal.example:8080"})
	if err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app) // with a portal URL it starts
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
