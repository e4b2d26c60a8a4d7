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
	_, base := startApp(t, nil, func(app *troupe.App) { pub = troupetest.RecordPublishes(app) })

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
		header                   []string // name, value pairs
	}{
		// POST /candidates
		{"empty body", "POST", "/candidates", "", 400, []string{"body is empty", `"frequency"`}, nil},
		{"not JSON", "POST", "/candidates", "name=ada", 400, []string{"not valid JSON"}, nil},
		{"truncated JSON", "POST", "/candidates", `{"name":"Ada","preferences":{`, 400, []string{"ends too early"}, nil},
		{"array", "POST", "/candidates", `[]`, 400, []string{"must be a JSON object"}, nil},
		{"two objects", "POST", "/candidates", goodCand + ` {}`, 400, []string{"more than one JSON value"}, nil},
		{"unknown field", "POST", "/candidates", cand(`,"age":30`), 400, []string{`unknown field "age"`}, nil},
		{"unknown preference", "POST", "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"daily","salary":1},"resume":"Go"}`, 400, []string{`unknown field "salary"`}, nil},
		{"frequency as number", "POST", "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":1},"resume":"Go"}`, 400, []string{"preferences.frequency must be a string, not a JSON number"}, nil},
		{"locations as string", "POST", "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"daily","locations":"Berlin"},"resume":"Go"}`, 400, []string{"preferences.locations", "string"}, nil},
		{"missing name", "POST", "/candidates", without(goodCand, `"name":"Ada",`), 422, []string{"name is required"}, nil},
		{"blank name", "POST", "/candidates", strings.Replace(goodCand, `"Ada"`, `"   "`, 1), 422, []string{"name is required"}, nil},
		{"name with a control character", "POST", "/candidates", strings.Replace(goodCand, `"Ada"`, `"A\u0000da"`, 1), 422, []string{"name must not contain control characters"}, nil},
		{"long name", "POST", "/candidates", strings.Replace(goodCand, `"Ada"`, `"`+strings.Repeat("a", 101)+`"`, 1), 422, []string{"name must be at most 100"}, nil},
		{"missing email", "POST", "/candidates", without(goodCand, `"email":"ada@example.com",`), 422, []string{"email is required"}, nil},
		{"bad email", "POST", "/candidates", strings.Replace(goodCand, "ada@example.com", "ada", 1), 422, []string{`email "ada" is not an address`}, nil},
		{"email with a display name", "POST", "/candidates", strings.Replace(goodCand, "ada@example.com", "Ada <ada@example.com>", 1), 422, []string{"is not an address"}, nil},
		{"missing frequency", "POST", "/candidates", strings.Replace(goodCand, `"frequency":"daily"`, ``, 1), 422, []string{"preferences.frequency is required", "instant, daily, weekly, monthly"}, nil},
		{"unknown frequency", "POST", "/candidates", strings.Replace(goodCand, `"daily"`, `"hourly"`, 1), 422, []string{`preferences.frequency "hourly" is not one of instant, daily, weekly, monthly`}, nil},
		{"too many locations", "POST", "/candidates", strings.Replace(goodCand, `"frequency":"daily"`, `"frequency":"daily","locations":["a","b","c","d","e","f","g","h","i","j","k"]`, 1), 422, []string{"at most 10 places"}, nil},
		{"empty location", "POST", "/candidates", strings.Replace(goodCand, `"frequency":"daily"`, `"frequency":"daily","locations":["Berlin"," "]`, 1), 422, []string{"preferences.locations[1] is empty"}, nil},
		{"missing resume", "POST", "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"daily"}}`, 422, []string{"resume is required"}, nil},
		{"resume with a control character", "POST", "/candidates", strings.Replace(goodCand, "Go, 5 years", `Go\u0007`, 1), 422, []string{"resume must be plain text"}, nil},
		{"resume too long", "POST", "/candidates", strings.Replace(goodCand, "Go, 5 years", strings.Repeat("Go ", 11<<10), 1), 422, []string{"resume must be at most 32 KiB"}, nil},
		{"several problems", "POST", "/candidates", `{"name":"","email":"x","preferences":{"frequency":"never"},"resume":""}`, 422,
			[]string{"name is required", `email "x"`, `"never"`, "resume is required"}, nil},
		{"too large", "POST", "/candidates", cand(`,"x":"` + strings.Repeat("a", 70<<10) + `"`), 413, []string{"larger than 64 KiB"}, nil},
		{"PUT /candidates", "PUT", "/candidates", "", 405, []string{"/candidates does not take PUT; it takes GET, POST"}, nil},
		{"candidates with a query", "GET", "/candidates?status=profiled", "", 400, []string{`unknown query parameter "status"`}, nil},
		{"idempotency key with a space", "POST", "/candidates", goodCand, 400, []string{"Idempotency-Key must be printable ASCII without spaces"}, []string{"Idempotency-Key", "a b"}},
		{"idempotency key too long", "POST", "/candidates", goodCand, 400, []string{"Idempotency-Key must be 1 to 200 characters"}, []string{"Idempotency-Key", strings.Repeat("k", 201)}},
		{"job idempotency key not ASCII", "POST", "/jobs", goodJob, 400, []string{"Idempotency-Key must be printable ASCII"}, []string{"Idempotency-Key", "clé"}},
		// GET /candidates/{id}
		{"unknown candidate", "GET", "/candidates/cand-000000000000", "", 404, []string{`no candidate "cand-000000000000"`}, nil},
		{"candidate id with a bad character", "GET", "/candidates/cand_1", "", 400, []string{"1 to 64 letters, digits or '-'"}, nil},
		{"candidate id too long", "GET", "/candidates/" + long, "", 400, []string{"1 to 64"}, nil},
		{"candidate with a query", "GET", "/candidates/cand-1?full=1", "", 400, []string{`unknown query parameter "full"`, "takes none"}, nil},
		{"candidate wrong method", "PUT", "/candidates/cand-1", goodCand, 405, []string{"/candidates/{id} does not take PUT"}, nil},
		{"below a candidate", "GET", "/candidates/cand-1/matches", "", 404, []string{"no resource at /candidates/cand-1/matches"}, nil},
		// POST /jobs
		{"job empty body", "POST", "/jobs", "", 400, []string{"body is empty", `"skills"`}, nil},
		{"job not JSON", "POST", "/jobs", "{title}", 400, []string{"not valid JSON"}, nil},
		{"job unknown field", "POST", "/jobs", strings.Replace(goodJob, `"min_years"`, `"salary":1,"min_years"`, 1), 400, []string{`unknown field "salary"`}, nil},
		{"skills as string", "POST", "/jobs", strings.Replace(goodJob, `["go"]`, `"go"`, 1), 400, []string{"skills must be an array of strings, not a JSON string"}, nil},
		{"min_years as float", "POST", "/jobs", strings.Replace(goodJob, `"min_years":2`, `"min_years":2.5`, 1), 400, []string{"min_years must be a whole number"}, nil},
		{"missing title", "POST", "/jobs", strings.Replace(goodJob, `"title":"Backend engineer",`, "", 1), 422, []string{"title is required"}, nil},
		{"blank company", "POST", "/jobs", strings.Replace(goodJob, `"Acme"`, `" "`, 1), 422, []string{"company is required"}, nil},
		{"missing location", "POST", "/jobs", strings.Replace(goodJob, `"location":"Berlin",`, "", 1), 422, []string{"location is required"}, nil},
		{"title with a newline", "POST", "/jobs", strings.Replace(goodJob, "Backend engineer", `Backend\nengineer`, 1), 422, []string{"title must not contain control characters"}, nil},
		{"no skills", "POST", "/jobs", jobBody("Backend engineer", "Berlin", 2), 422, []string{"at least one skill"}, nil},
		{"unknown skill", "POST", "/jobs", jobBody("Backend engineer", "Berlin", 2, "go", "cobol"), 422, []string{`skills[1] "cobol" is not a skill`, "kubernetes"}, nil},
		{"too many skills", "POST", "/jobs", jobBody("Backend engineer", "Berlin", 2, strings.Split(strings.Repeat("go,", 21), ",")[:21]...), 422, []string{"at most 20 skills"}, nil},
		{"negative min_years", "POST", "/jobs", jobBody("Backend engineer", "Berlin", -1, "go"), 422, []string{"min_years must be from 0 to 50, got -1"}, nil},
		{"min_years too high", "POST", "/jobs", jobBody("Backend engineer", "Berlin", 51, "go"), 422, []string{"got 51"}, nil},
		{"job several problems", "POST", "/jobs", `{"title":"","company":"","location":"","skills":[],"min_years":-3}`, 422,
			[]string{"title is required", "company is required", "location is required", "at least one skill", "got -3"}, nil},
		{"job too large", "POST", "/jobs", `{"title":"` + strings.Repeat("a", 70<<10) + `"}`, 413, []string{"larger than 64 KiB"}, nil},
		// GET /jobs, GET /jobs/{id}
		{"jobs with a query", "GET", "/jobs?skill=go", "", 400, []string{`unknown query parameter "skill"`}, nil},
		{"jobs wrong method", "DELETE", "/jobs", "", 405, []string{"/jobs does not take DELETE; it takes GET, POST"}, nil},
		{"unknown job", "GET", "/jobs/job-000000000000", "", 404, []string{`no job "job-000000000000"`}, nil},
		{"job id with a bad character", "GET", "/jobs/job.1", "", 400, []string{"a job id is 1 to 64"}, nil},
		{"job with a query", "GET", "/jobs/job-1?x=1", "", 400, []string{`unknown query parameter "x"`}, nil},
		{"job wrong method", "POST", "/jobs/job-1", goodJob, 405, []string{"/jobs/{id} does not take POST"}, nil},
		// GET /notifications
		{"notifications parameter", "GET", "/notifications?email=ada@example.com", "", 400, []string{`unknown query parameter "email"`, "candidate"}, nil},
		{"notifications empty candidate", "GET", "/notifications?candidate=", "", 400, []string{"candidate must be a candidate id"}, nil},
		{"notifications bad candidate", "GET", "/notifications?candidate=" + long, "", 400, []string{"candidate must be a candidate id"}, nil},
		{"notifications wrong method", "POST", "/notifications", `{}`, 405, []string{"/notifications does not take POST; it takes GET"}, nil},
		// Anything else
		{"index with a query", "GET", "/?verbose=1", "", 400, []string{`unknown query parameter "verbose"`}, nil},
		{"index wrong method", "POST", "/", goodCand, 405, []string{"/ does not take POST"}, nil},
		{"unknown path", "GET", "/profiles", "", 404, []string{"no resource at /profiles"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b, h := do(t, tc.method, base+tc.path, tc.body, tc.header...)
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

// A POST retried with its Idempotency-Key answers with the resource the
// first one made and stores and publishes nothing new; the same key on the
// other route is refused.
func TestIdempotencyKeyMakesRetriesSafe(t *testing.T) {
	var pub *troupetest.PublishLog
	_, base := startApp(t, &jobfeed.Options{}, func(app *troupe.App) { pub = troupetest.RecordPublishes(app) })
	body := candidateBody("Ada", portal.Instant, "Go, 5 years")
	var first, again portal.Created
	for i, c := range []*portal.Created{&first, &again} {
		status, b, _ := do(t, "POST", base+"/candidates", body, "Idempotency-Key", "reg-ada-1")
		if status != http.StatusCreated || json.Unmarshal(b, c) != nil {
			t.Fatalf("POST %d: %d %s", i+1, status, b)
		}
	}
	if again.ID != first.ID || first.Replayed || !again.Replayed {
		t.Errorf("the retry answered %+v after %+v; want the same id, replayed", again, first)
	}
	job := jobBody("Go developer", "remote", 1, "go")
	var j1, j2 portal.Created
	for i, c := range []*portal.Created{&j1, &j2} {
		status, b, _ := do(t, "POST", base+"/jobs", job, "Idempotency-Key", "job-1")
		if status != http.StatusCreated || json.Unmarshal(b, c) != nil {
			t.Fatalf("POST /jobs %d: %d %s", i+1, status, b)
		}
	}
	if j1.ID != j2.ID || !j2.Replayed {
		t.Errorf("the job's retry answered %+v after %+v", j2, j1)
	}
	status, b, _ := do(t, "POST", base+"/jobs", job, "Idempotency-Key", "reg-ada-1")
	if status != http.StatusConflict || !strings.Contains(string(b), "another kind") {
		t.Errorf("a candidate's key on POST /jobs: %d %s; want 409", status, b)
	}
	var cands portal.CandidateList
	getJSON(t, base+"/candidates", &cands)
	var jobs portal.JobList
	getJSON(t, base+"/jobs", &jobs)
	if cands.Count != 1 || jobs.Count != 1 {
		t.Errorf("%d candidates and %d jobs stored, want 1 each", cands.Count, jobs.Count)
	}
	poll(t, "the job to be matched", func() portal.JobList { getJSON(t, base+"/jobs", &jobs); return jobs },
		func(l portal.JobList) bool { return l.Stuck == 0 })
	registered := 0
	for _, typ := range pub.Taken() {
		if typ == "candidate_registered.v1" || typ == "job_posted.v1" {
			registered++
		}
	}
	if registered != 2 {
		t.Errorf("published %v; want one candidate_registered and one job_posted", pub.Taken())
	}
}
