package jobfeed_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/troupetest"
)

// Every endpoint answers a bad request with a 4xx and a JSON error that
// says what to fix, and nothing is stored or published for it.
func TestBadRequestsGetJSONErrorsAndPublishNothing(t *testing.T) {
	var pub *troupetest.PublishLog
	_, base := startApp(t, jobfeed.Options{}, func(app *troupe.App) { pub = troupetest.RecordPublishes(app) })

	cand := func(fields string) string {
		return `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"daily"},"resume":"Go, 5 years"` + fields + `}`
	}
	without := func(body, field string) string { return strings.Replace(body, field, "", 1) }
	goodCand := cand("")
	goodJob := jobBody("Backend engineer", "Berlin", 2, "go")
	long := strings.Repeat("x", 65)

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		wantErr                  []string // substrings of the error message
	}{
		// POST /candidates
		{"empty body", "POST", "/candidates", "", 400, []string{"body is empty", `"frequency"`}},
		{"not JSON", "POST", "/candidates", "name=ada", 400, []string{"not valid JSON"}},
		{"truncated JSON", "POST", "/candidates", `{"name":"Ada","preferences":{`, 400, []string{"ends too early"}},
		{"array", "POST", "/candidates", `[]`, 400, []string{"must be a JSON object"}},
		{"two objects", "POST", "/candidates", goodCand + ` {}`, 400, []string{"more than one JSON value"}},
		{"unknown field", "POST", "/candidates", cand(`,"age":30`), 400, []string{`unknown field "age"`}},
		{"unknown preference", "POST", "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"daily","salary":1},"resume":"Go"}`, 400, []string{`unknown field "salary"`}},
		{"frequency as number", "POST", "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":1},"resume":"Go"}`, 400, []string{"preferences.frequency must be a string, not a JSON number"}},
		{"locations as string", "POST", "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"daily","locations":"Berlin"},"resume":"Go"}`, 400, []string{"preferences.locations", "string"}},
		{"missing name", "POST", "/candidates", without(goodCand, `"name":"Ada",`), 422, []string{"name is required"}},
		{"blank name", "POST", "/candidates", strings.Replace(goodCand, `"Ada"`, `"   "`, 1), 422, []string{"name is required"}},
		{"name with a control character", "POST", "/candidates", strings.Replace(goodCand, `"Ada"`, `"A\u0000da"`, 1), 422, []string{"name must not contain control characters"}},
		{"long name", "POST", "/candidates", strings.Replace(goodCand, `"Ada"`, `"`+strings.Repeat("a", 101)+`"`, 1), 422, []string{"name must be at most 100"}},
		{"missing email", "POST", "/candidates", without(goodCand, `"email":"ada@example.com",`), 422, []string{"email is required"}},
		{"bad email", "POST", "/candidates", strings.Replace(goodCand, "ada@example.com", "ada", 1), 422, []string{`email "ada" is not an address`}},
		{"email with a display name", "POST", "/candidates", strings.Replace(goodCand, "ada@example.com", "Ada <ada@example.com>", 1), 422, []string{"is not an address"}},
		{"missing frequency", "POST", "/candidates", strings.Replace(goodCand, `"frequency":"daily"`, ``, 1), 422, []string{"preferences.frequency is required", "instant, daily, weekly, monthly"}},
		{"unknown frequency", "POST", "/candidates", strings.Replace(goodCand, `"daily"`, `"hourly"`, 1), 422, []string{`preferences.frequency "hourly" is not one of instant, daily, weekly, monthly`}},
		{"too many locations", "POST", "/candidates", strings.Replace(goodCand, `"frequency":"daily"`, `"frequency":"daily","locations":["a","b","c","d","e","f","g","h","i","j","k"]`, 1), 422, []string{"at most 10 places"}},
		{"empty location", "POST", "/candidates", strings.Replace(goodCand, `"frequency":"daily"`, `"frequency":"daily","locations":["Berlin"," "]`, 1), 422, []string{"preferences.locations[1] is empty"}},
		{"missing resume", "POST", "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"daily"}}`, 422, []string{"resume is required"}},
		{"resume with a control character", "POST", "/candidates", strings.Replace(goodCand, "Go, 5 years", `Go\u0007`, 1), 422, []string{"resume must be plain text"}},
		{"resume too long", "POST", "/candidates", strings.Replace(goodCand, "Go, 5 years", strings.Repeat("Go ", 11<<10), 1), 422, []string{"resume must be at most 32 KiB"}},
		{"several problems", "POST", "/candidates", `{"name":"","email":"x","preferences":{"frequency":"never"},"resume":""}`, 422,
			[]string{"name is required", `email "x"`, `"never"`, "resume is required"}},
		{"too large", "POST", "/candidates", cand(`,"x":"` + strings.Repeat("a", 70<<10) + `"`), 413, []string{"larger than 64 KiB"}},
		{"GET /candidates", "GET", "/candidates", "", 405, []string{"/candidates does not take GET; it takes POST"}},
		// GET /candidates/{id}
		{"unknown candidate", "GET", "/candidates/cand-000000000000", "", 404, []string{`no candidate "cand-000000000000"`}},
		{"candidate id with a bad character", "GET", "/candidates/cand_1", "", 400, []string{"1 to 64 letters, digits or '-'"}},
		{"candidate id too long", "GET", "/candidates/" + long, "", 400, []string{"1 to 64"}},
		{"candidate with a query", "GET", "/candidates/cand-1?full=1", "", 400, []string{`unknown query parameter "full"`, "takes none"}},
		{"candidate wrong method", "PUT", "/candidates/cand-1", goodCand, 405, []string{"/candidates/{id} does not take PUT"}},
		{"below a candidate", "GET", "/candidates/cand-1/matches", "", 404, []string{"no resource at /candidates/cand-1/matches"}},
		// POST /jobs
		{"job empty body", "POST", "/jobs", "", 400, []string{"body is empty", `"skills"`}},
		{"job not JSON", "POST", "/jobs", "{title}", 400, []string{"not valid JSON"}},
		{"job unknown field", "POST", "/jobs", strings.Replace(goodJob, `"min_years"`, `"salary":1,"min_years"`, 1), 400, []string{`unknown field "salary"`}},
		{"skills as string", "POST", "/jobs", strings.Replace(goodJob, `["go"]`, `"go"`, 1), 400, []string{"skills must be an array of strings, not a JSON string"}},
		{"min_years as float", "POST", "/jobs", strings.Replace(goodJob, `"min_years":2`, `"min_years":2.5`, 1), 400, []string{"min_years must be a whole number"}},
		{"missing title", "POST", "/jobs", strings.Replace(goodJob, `"title":"Backend engineer",`, "", 1), 422, []string{"title is required"}},
		{"blank company", "POST", "/jobs", strings.Replace(goodJob, `"Acme"`, `" "`, 1), 422, []string{"company is required"}},
		{"missing location", "POST", "/jobs", strings.Replace(goodJob, `"location":"Berlin",`, "", 1), 422, []string{"location is required"}},
		{"title with a newline", "POST", "/jobs", strings.Replace(goodJob, "Backend engineer", `Backend\nengineer`, 1), 422, []string{"title must not contain control characters"}},
		{"no skills", "POST", "/jobs", jobBody("Backend engineer", "Berlin", 2), 422, []string{"at least one skill"}},
		{"unknown skill", "POST", "/jobs", jobBody("Backend engineer", "Berlin", 2, "go", "cobol"), 422, []string{`skills[1] "cobol" is not a skill`, "kubernetes"}},
		{"too many skills", "POST", "/jobs", jobBody("Backend engineer", "Berlin", 2, strings.Split(strings.Repeat("go,", 21), ",")[:21]...), 422, []string{"at most 20 skills"}},
		{"negative min_years", "POST", "/jobs", jobBody("Backend engineer", "Berlin", -1, "go"), 422, []string{"min_years must be from 0 to 50, got -1"}},
		{"min_years too high", "POST", "/jobs", jobBody("Backend engineer", "Berlin", 51, "go"), 422, []string{"got 51"}},
		{"job several problems", "POST", "/jobs", `{"title":"","company":"","location":"","skills":[],"min_years":-3}`, 422,
			[]string{"title is required", "company is required", "location is required", "at least one skill", "got -3"}},
		{"job too large", "POST", "/jobs", `{"title":"` + strings.Repeat("a", 70<<10) + `"}`, 413, []string{"larger than 64 KiB"}},
		// GET /jobs, GET /jobs/{id}
		{"jobs with a query", "GET", "/jobs?skill=go", "", 400, []string{`unknown query parameter "skill"`}},
		{"jobs wrong method", "DELETE", "/jobs", "", 405, []string{"/jobs does not take DELETE; it takes GET, POST"}},
		{"unknown job", "GET", "/jobs/job-000000000000", "", 404, []string{`no job "job-000000000000"`}},
		{"job id with a bad character", "GET", "/jobs/job.1", "", 400, []string{"a job id is 1 to 64"}},
		{"job with a query", "GET", "/jobs/job-1?x=1", "", 400, []string{`unknown query parameter "x"`}},
		{"job wrong method", "POST", "/jobs/job-1", goodJob, 405, []string{"/jobs/{id} does not take POST"}},
		// GET /notifications
		{"notifications parameter", "GET", "/notifications?email=ada@example.com", "", 400, []string{`unknown query parameter "email"`, "candidate"}},
		{"notifications empty candidate", "GET", "/notifications?candidate=", "", 400, []string{"candidate must be a candidate id"}},
		{"notifications bad candidate", "GET", "/notifications?candidate=" + long, "", 400, []string{"candidate must be a candidate id"}},
		{"notifications wrong method", "POST", "/notifications", `{}`, 405, []string{"/notifications does not take POST; it takes GET"}},
		// Anything else
		{"index with a query", "GET", "/?verbose=1", "", 400, []string{`unknown query parameter "verbose"`}},
		{"index wrong method", "POST", "/", goodCand, 405, []string{"/ does not take POST"}},
		{"unknown path", "GET", "/profiles", "", 404, []string{"no resource at /profiles"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b, h := do(t, tc.method, base+tc.path, tc.body)
			if status != tc.status {
				t.Errorf("status %d, want %d; body %s", status, tc.status, b)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var body map[string]string
			if err := json.Unmarshal(b, &body); err != nil || body["error"] == "" {
				t.Fatalf("body %s is not a JSON error (%v)", b, err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(body["error"], w) {
					t.Errorf("error %q does not mention %q", body["error"], w)
				}
			}
			if status == http.StatusMethodNotAllowed && h.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if got := pub.Taken(); len(got) > 0 {
				t.Errorf("the bad request published %v", got)
			}
		})
	}

	var jobs portal.JobList
	getJSON(t, base+"/jobs", &jobs)
	if jobs.Count != 0 || len(jobs.Jobs) != 0 {
		t.Errorf("after the bad requests GET /jobs lists %+v; want no jobs", jobs)
	}
	if s := sent(t, base, ""); s.Count != 0 {
		t.Errorf("after the bad requests the notification service sent %+v", s)
	}

	// The witness works: a good registration is seen, and it is all that
	// is published. The outbox would publish a row left by a bad request
	// too, before or after this one.
	id := register(t, base, "Ada", portal.Daily, "Go, 5 years")
	poll(t, "the profile", func() portal.Candidate { return candidate(t, base, id) },
		func(c portal.Candidate) bool { return c.Status == "profiled" })
	if got, want := pub.Taken(), []string{"candidate_registered.v1", "profile_created.v1"}; !slices.Equal(got, want) {
		t.Errorf("after a good registration the app published %v, want %v", got, want)
	}

	// The same email again is a conflict, and publishes nothing.
	status, b, _ := do(t, "POST", base+"/candidates", candidateBody("ADA", portal.Weekly, "Rust"))
	var body map[string]string
	if err := json.Unmarshal(b, &body); err != nil || status != http.StatusConflict || !strings.Contains(body["error"], "ada@example.com is already registered") {
		t.Errorf("a second registration of ada@example.com: %d %s (%v); want 409", status, b, err)
	}
	if got := pub.Taken(); len(got) > 0 {
		t.Errorf("the refused registration published %v", got)
	}
}
