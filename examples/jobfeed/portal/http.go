package portal

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/tally"
	"github.com/troupe-go/troupe/examples/jobfeed/internal/api"
	"github.com/troupe-go/troupe/examples/jobfeed/internal/skills"
	"github.com/troupe-go/troupe/outbox"
)

// Limits of what the portal accepts.
const (
	maxNameLen     = 100
	maxEmailLen    = 254
	maxLocations   = 10
	maxLocationLen = 60
	maxResumeLen   = 32 << 10
	maxTitleLen    = 120
	maxSkills      = 20
	maxYears       = 50
	listLimit      = 500
	recentLimit    = 100
)

// handlers serve the portal's routes.
type handlers struct {
	log  *slog.Logger
	ob   *outbox.Outbox
	view *view
}

// q rewrites query's placeholders for the portal's database.
func (h *handlers) q(query string) string { return store.Q(h.ob, query) }

// Registration is the body of POST /candidates.
type Registration struct {
	Name        string      `json:"name"`
	Email       string      `json:"email"`
	Preferences Preferences `json:"preferences"`
	Resume      string      `json:"resume"`
}

// Links holds the URLs of a resource.
type Links struct {
	Self string `json:"self"`
}

// Created is the answer to a successful POST.
type Created struct {
	ID     string `json:"id"`
	Status string `json:"status,omitempty"`
	// Replayed is set when the answer repeats the one given earlier to the
	// same Idempotency-Key: nothing new was stored or published.
	Replayed bool  `json:"replayed,omitempty"`
	Links    Links `json:"links"`
}

// Candidate is the body of GET /candidates/{id}: what the candidate gave,
// and what the other services made of it.
type Candidate struct {
	ID           string      `json:"id"`
	Name         string      `json:"name"`
	Email        string      `json:"email"`
	Preferences  Preferences `json:"preferences"`
	Resume       string      `json:"resume"`
	RegisteredAt time.Time   `json:"registered_at"`
	// Status is "registered" until the profile service has read the
	// resume, then "profiled"; or "profile_failed" if it gave up, with
	// the reason in Failure.
	Status  string `json:"status"`
	Failure string `json:"failure,omitempty"`
	// Profile is what the profile service read in the resume; null until
	// then.
	Profile *ProfileSummary `json:"profile"`
	// Matches are the open jobs found for the candidate, oldest first.
	Matches []Match `json:"matches"`
	Links   Links   `json:"links"`
}

// ProfileSummary is the part of a profile the portal shows.
type ProfileSummary struct {
	Skills            []string  `json:"skills"`
	YearsOfExperience int       `json:"years_of_experience"`
	ProfiledAt        time.Time `json:"profiled_at"`
}

// JobView is a job as GET /jobs and GET /jobs/{id} show it: as posted,
// with what the read model knows of its matching.
type JobView struct {
	Job
	// Status is "posted" until the recommendation service has matched the
	// job against every profile, then "matched" or "unmatched".
	Status string `json:"status"`
	// Candidates counts the candidates it suited when it was matched.
	Candidates int `json:"candidates"`
}

// JobList is the body of GET /jobs: the counts of every job by status,
// and the newest jobs.
type JobList struct {
	tally.Counts
	Jobs []JobView `json:"jobs"`
}

// CandidateSummary is a registration as GET /candidates lists it.
type CandidateSummary struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Status       string    `json:"status"`
	RegisteredAt time.Time `json:"registered_at"`
	Links        Links     `json:"links"`
}

// CandidateList is the body of GET /candidates: the counts of every
// registration by status, and the newest registrations.
type CandidateList struct {
	tally.Counts
	Candidates []CandidateSummary `json:"candidates"`
}

const candidateExample = `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"daily","locations":["Berlin"]},"resume":"6 years of Go and PostgreSQL"}`

// register signs a candidate up: it stores the registration and writes
// candidate_registered in one transaction. Nothing is stored or published
// for a bad request.
func (h *handlers) register(w http.ResponseWriter, r *http.Request) {
	key, err := httpjson.IdempotencyKey(r)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req Registration
	if status, err := api.Decode(w, r, &req, candidateExample); err != nil {
		httpjson.WriteError(w, status, err.Error())
		return
	}
	req, err = validRegistration(req)
	if err != nil {
		httpjson.WriteError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	id := newID("cand")
	locs, _ := json.Marshal(req.Preferences.Locations)
	ctx := outbox.WithOutbox(troupe.WithCorrelationID(r.Context(), id), h.ob)
	err = h.inTx(ctx, func(tx *sql.Tx) error {
		if err := h.claim(ctx, tx, key, kindCandidate, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, h.q(`INSERT INTO portal_candidates (id, name, email, frequency, locations, resume, registered_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO NOTHING`), id, req.Name, req.Email, string(req.Preferences.Frequency), string(locs), req.Resume,
			time.Now().UnixMicro())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(errEmailTaken, err)
		}
		return outbox.PublishTx(ctx, tx, CandidateRegistered, CandidateRegisteredV1{CandidateID: id, Href: candidatePath(id)})
	})
	var replay replayed
	switch {
	case errors.As(err, &replay):
		h.replay(w, r, key, kindCandidate, replay.id)
		return
	case errors.Is(err, errKeyReused):
		httpjson.WriteError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, errEmailTaken):
		httpjson.WriteError(w, http.StatusConflict, fmt.Sprintf("a candidate with email %s is already registered", req.Email))
		return
	case err != nil:
		h.log.Error("portal: could not register a candidate", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the registration could not be stored right now; try again (with the same Idempotency-Key, if you sent one)")
		return
	}
	h.log.Info(fmt.Sprintf("portal: registered candidate %s (%s), %s notifications", id, req.Name, req.Preferences.Frequency))
	w.Header().Set("Location", candidatePath(id))
	httpjson.WriteJSON(w, http.StatusCreated, Created{ID: id, Status: StatusRegistered, Links: Links{Self: candidatePath(id)}})
}

var errEmailTaken = errors.New("email taken")

// validRegistration checks and tidies a registration, reporting every
// problem at once.
func validRegistration(req Registration) (Registration, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	req.Name = strings.TrimSpace(req.Name)
	switch {
	case req.Name == "":
		bad("name is required")
	case len(req.Name) > maxNameLen:
		bad("name must be at most %d bytes", maxNameLen)
	case api.HasControl(req.Name) || strings.ContainsAny(req.Name, "\n\r\t"):
		bad("name must not contain control characters")
	}
	req.Email = strings.TrimSpace(req.Email)
	if req.Email == "" {
		bad("email is required")
	} else if a, err := mail.ParseAddress(req.Email); err != nil || a.Address != req.Email || len(req.Email) > maxEmailLen {
		bad("email %q is not an address such as ada@example.com", req.Email)
	} else {
		req.Email = strings.ToLower(req.Email)
	}
	p := &req.Preferences
	switch {
	case p.Frequency == "":
		bad("preferences.frequency is required: one of %s", frequencyList())
	case !slices.Contains(Frequencies, p.Frequency):
		bad("preferences.frequency %q is not one of %s", p.Frequency, frequencyList())
	}
	if len(p.Locations) > maxLocations {
		bad("preferences.locations must list at most %d places", maxLocations)
	}
	locs := []string{}
	for i, l := range p.Locations {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
			bad("preferences.locations[%d] is empty", i)
		case len(l) > maxLocationLen || api.HasControl(l):
			bad("preferences.locations[%d] must be at most %d printable bytes", i, maxLocationLen)
		default:
			locs = append(locs, l)
		}
	}
	p.Locations = locs
	switch {
	case strings.TrimSpace(req.Resume) == "":
		bad("resume is required: paste the resume's text")
	case len(req.Resume) > maxResumeLen:
		bad("resume must be at most %d KiB", maxResumeLen>>10)
	case api.HasControl(req.Resume):
		bad("resume must be plain text, without control characters")
	}
	if len(problems) > 0 {
		return req, errors.New(strings.Join(problems, "; "))
	}
	return req, nil
}

func frequencyList() string {
	s := make([]string, len(Frequencies))
	for i, f := range Frequencies {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// jobRequest is the body of POST /jobs.
type jobRequest struct {
	Title    string   `json:"title"`
	Company  string   `json:"company"`
	Location string   `json:"location"`
	Skills   []string `json:"skills"`
	MinYears int      `json:"min_years"`
}

const jobExample = `{"title":"Backend engineer","company":"Acme","location":"Berlin","skills":["go","postgresql"],"min_years":3}`

// postJob posts a job: it stores it and writes job_posted in one
// transaction.
func (h *handlers) postJob(w http.ResponseWriter, r *http.Request) {
	key, err := httpjson.IdempotencyKey(r)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req jobRequest
	if status, err := api.Decode(w, r, &req, jobExample); err != nil {
		httpjson.WriteError(w, status, err.Error())
		return
	}
	job, err := validJob(req)
	if err != nil {
		httpjson.WriteError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	job.ID = newID("job")
	job.PostedAt = time.Now().UTC().Truncate(time.Microsecond)
	sk, _ := json.Marshal(job.Skills)
	ctx := outbox.WithOutbox(troupe.WithCorrelationID(r.Context(), job.ID), h.ob)
	err = h.inTx(ctx, func(tx *sql.Tx) error {
		if err := h.claim(ctx, tx, key, kindJob, job.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, h.q(`INSERT INTO portal_jobs (id, title, company, location, skills, min_years, posted_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), job.ID, job.Title, job.Company, job.Location, string(sk), job.MinYears,
			job.PostedAt.UnixMicro()); err != nil {
			return err
		}
		return outbox.PublishTx(ctx, tx, JobPosted, job)
	})
	var replay replayed
	switch {
	case errors.As(err, &replay):
		h.replay(w, r, key, kindJob, replay.id)
		return
	case errors.Is(err, errKeyReused):
		httpjson.WriteError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		h.log.Error("portal: could not post a job", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the job could not be stored right now; try again (with the same Idempotency-Key, if you sent one)")
		return
	}
	h.log.Info(fmt.Sprintf("portal: posted job %s, %s at %s (%s)", job.ID, job.Title, job.Company, job.Location))
	w.Header().Set("Location", jobPath(job.ID))
	httpjson.WriteJSON(w, http.StatusCreated, Created{ID: job.ID, Status: JobStatusPosted, Links: Links{Self: jobPath(job.ID)}})
}

// validJob checks a job request and puts its skills in canonical form,
// reporting every problem at once.
func validJob(req jobRequest) (Job, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	text := func(field, v string, limit int) string {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			bad("%s is required", field)
		case len(v) > limit:
			bad("%s must be at most %d bytes", field, limit)
		case api.HasControl(v) || strings.ContainsAny(v, "\n\r\t"):
			bad("%s must not contain control characters", field)
		}
		return v
	}
	job := Job{
		Title:    text("title", req.Title, maxTitleLen),
		Company:  text("company", req.Company, maxNameLen),
		Location: text("location", req.Location, maxLocationLen),
		Skills:   []string{},
		MinYears: req.MinYears,
	}
	switch {
	case len(req.Skills) == 0:
		bad("skills must list at least one skill, such as [\"go\"]")
	case len(req.Skills) > maxSkills:
		bad("skills must list at most %d skills", maxSkills)
	}
	for i, s := range req.Skills {
		c, ok := skills.Canonical(s)
		if !ok {
			bad("skills[%d] %q is not a skill the job feed knows; it knows %s", i, s, strings.Join(skills.Known(), ", "))
			continue
		}
		if !slices.Contains(job.Skills, c) {
			job.Skills = append(job.Skills, c)
		}
	}
	slices.Sort(job.Skills)
	if req.MinYears < 0 || req.MinYears > maxYears {
		bad("min_years must be from 0 to %d, got %d", maxYears, req.MinYears)
	}
	if len(problems) > 0 {
		return Job{}, errors.New(strings.Join(problems, "; "))
	}
	return job, nil
}

// The kinds of resource an Idempotency-Key may stand for.
const (
	kindCandidate = "candidate"
	kindJob       = "job"
)

var errKeyReused = errors.New("this Idempotency-Key was sent before with a request of another kind; send a new key for each new request")

// replayed is the error claim returns for a key seen before: the request
// is a retry, answered with the resource made the first time.
type replayed struct{ id string }

func (r replayed) Error() string { return "a retry of the request that made " + r.id }

// claim records that key (if any) stands for the resource id of kind, in
// the transaction that makes the resource. A key recorded before fails
// with replayed (same kind) or errKeyReused (another kind), and the
// caller rolls back: nothing is stored or published twice. On PostgreSQL a
// second request with the key waits here until the first commits or rolls
// back.
func (h *handlers) claim(ctx context.Context, tx *sql.Tx, key, kind, id string) error {
	if key == "" {
		return nil
	}
	res, err := tx.ExecContext(ctx, h.q(`INSERT INTO portal_idempotency (idem_key, kind, resource_id, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (idem_key) DO NOTHING`), key, kind, id, time.Now().UnixMicro())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var was, wasID string
	if err := tx.QueryRowContext(ctx, h.q("SELECT kind, resource_id FROM portal_idempotency WHERE idem_key = ?"), key).Scan(&was, &wasID); err != nil {
		return err
	}
	if was != kind {
		return errKeyReused
	}
	return replayed{id: wasID}
}

// replay answers a retried POST with the resource its key made.
func (h *handlers) replay(w http.ResponseWriter, r *http.Request, key, kind, id string) {
	path, status := candidatePath(id), StatusRegistered
	if kind == kindJob {
		path, status = jobPath(id), JobStatusPosted
	}
	h.log.Info(fmt.Sprintf("portal: %s %s again with Idempotency-Key %q: answered with %s, nothing new stored", r.Method, r.URL.Path, key, id))
	w.Header().Set("Location", path)
	httpjson.WriteJSON(w, http.StatusCreated, Created{ID: id, Status: status, Replayed: true, Links: Links{Self: path}})
}

// candidate serves a candidate's registration, profile and matches.
func (h *handlers) candidate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if !api.ValidID(id) {
		httpjson.WriteError(w, http.StatusBadRequest, "a candidate id is 1 to 64 letters, digits or '-'")
		return
	}
	ctx := r.Context()
	c := Candidate{ID: id, Matches: []Match{}, Links: Links{Self: candidatePath(id)}}
	var locs string
	var at int64
	err := h.ob.DB().QueryRowContext(ctx, h.q("SELECT name, email, frequency, locations, resume, registered_at FROM portal_candidates WHERE id = ?"), id).
		Scan(&c.Name, &c.Email, &c.Preferences.Frequency, &locs, &c.Resume, &at)
	if errors.Is(err, sql.ErrNoRows) {
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("no candidate %q", id))
		return
	}
	if err == nil {
		c.RegisteredAt = time.UnixMicro(at).UTC()
		err = json.Unmarshal([]byte(locs), &c.Preferences.Locations)
	}
	var st state
	if err == nil {
		st, err = h.view.candidate(ctx, id)
	}
	if err == nil {
		c.Matches, err = h.view.matches(ctx, id)
	}
	if err != nil {
		h.serverError(w, "read candidate "+id, err)
		return
	}
	c.Status, c.Failure = st.Status, st.Reason
	if st.Status == StatusProfiled {
		c.Profile = &ProfileSummary{Skills: st.Profile.Skills, YearsOfExperience: st.Profile.YearsOfExperience, ProfiledAt: st.ProfiledAt}
	}
	httpjson.WriteJSON(w, http.StatusOK, c)
}

// candidates serves the counts of the registrations by status and the
// newest of them.
func (h *handlers) candidates(w http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	ctx := r.Context()
	var total int
	if err := h.ob.DB().QueryRowContext(ctx, "SELECT count(*) FROM portal_candidates").Scan(&total); err != nil {
		h.serverError(w, "count candidates", err)
		return
	}
	profiled, failed, err := h.view.outcomes(ctx)
	if err != nil {
		h.serverError(w, "count candidates", err)
		return
	}
	out := CandidateList{Candidates: []CandidateSummary{}}
	countOutcomes(&out.Counts, total, StatusRegistered, StatusProfiled, profiled, StatusProfileFailed, failed)
	rows, err := h.ob.DB().QueryContext(ctx, h.q("SELECT id, name, registered_at FROM portal_candidates ORDER BY registered_at DESC, id LIMIT ?"), recentLimit)
	if err != nil {
		h.serverError(w, "list candidates", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var c CandidateSummary
		var at int64
		if err := rows.Scan(&c.ID, &c.Name, &at); err != nil {
			h.serverError(w, "list candidates", err)
			return
		}
		c.RegisteredAt, c.Links = time.UnixMicro(at).UTC(), Links{Self: candidatePath(c.ID)}
		out.Candidates = append(out.Candidates, c)
	}
	if err := rows.Err(); err != nil {
		h.serverError(w, "list candidates", err)
		return
	}
	for i := range out.Candidates {
		st, err := h.view.candidate(ctx, out.Candidates[i].ID)
		if err != nil {
			h.serverError(w, "list candidates", err)
			return
		}
		out.Candidates[i].Status = st.Status
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// countOutcomes fills c with total transactions, of which done (terminal)
// and failed (terminal) reached an outcome and the rest are pending (not
// terminal). The read model counts outcomes and the portal's database the
// transactions; should the model know of more outcomes than the portal of
// transactions (a portal database restored from an old backup), count
// stays the portal's and the counts do not add up, so that they never
// look settled.
func countOutcomes(c *tally.Counts, total int, pending, doneStatus string, done int, failedStatus string, failed int) {
	c.Add(doneStatus, done, true)
	c.Add(failedStatus, failed, true)
	c.Add(pending, max(total-done-failed, 0), false)
	c.Count = total
}

// jobs serves the counts of the jobs by status, and the newest jobs.
func (h *handlers) jobs(w http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	ctx := r.Context()
	list, err := h.readJobs(ctx, "ORDER BY posted_at DESC, id LIMIT ?", listLimit)
	if err != nil {
		h.serverError(w, "list jobs", err)
		return
	}
	var n int
	if err := h.ob.DB().QueryRowContext(ctx, "SELECT count(*) FROM portal_jobs").Scan(&n); err != nil {
		h.serverError(w, "count jobs", err)
		return
	}
	matched, unmatched, err := h.view.jobOutcomes(ctx)
	if err != nil {
		h.serverError(w, "count jobs", err)
		return
	}
	out := JobList{Jobs: list}
	countOutcomes(&out.Counts, n, JobStatusPosted, JobStatusMatched, matched, JobStatusUnmatched, unmatched)
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// job serves one job.
func (h *handlers) job(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if !api.ValidID(id) {
		httpjson.WriteError(w, http.StatusBadRequest, "a job id is 1 to 64 letters, digits or '-'")
		return
	}
	list, err := h.readJobs(r.Context(), "WHERE id = ?", id)
	switch {
	case err != nil:
		h.serverError(w, "read job "+id, err)
	case len(list) == 0:
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("no job %q", id))
	default:
		httpjson.WriteJSON(w, http.StatusOK, list[0])
	}
}

// readJobs reads jobs from the portal's database and their status from
// the read model.
func (h *handlers) readJobs(ctx context.Context, where string, args ...any) ([]JobView, error) {
	rows, err := h.ob.DB().QueryContext(ctx, h.q("SELECT id, title, company, location, skills, min_years, posted_at FROM portal_jobs "+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []JobView{}
	for rows.Next() {
		var j JobView
		var sk string
		var at int64
		if err := rows.Scan(&j.ID, &j.Title, &j.Company, &j.Location, &sk, &j.MinYears, &at); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(sk), &j.Skills); err != nil {
			return nil, err
		}
		j.PostedAt = time.UnixMicro(at).UTC()
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for i := range out {
		if out[i].Status, out[i].Candidates, err = h.view.job(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Index is the body of GET /.
type Index struct {
	Service string    `json:"service"`
	Routes  []string  `json:"routes"`
	View    ViewStats `json:"view"`
}

func (h *handlers) index(w http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	st, err := h.view.stats(r.Context())
	if err != nil {
		h.serverError(w, "read model stats", err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, Index{
		Service: ServiceName,
		Routes: []string{"POST /candidates (header Idempotency-Key optional)", "GET /candidates", "GET /candidates/{id}",
			"POST /jobs (header Idempotency-Key optional)", "GET /jobs", "GET /jobs/{id}",
			"GET /notifications (notification service)", "GET /ui/ (dashboard)"},
		View: st,
	})
}

func (h *handlers) notFound(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		w.Header().Set("Allow", "GET")
		httpjson.WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("/ does not take %s; it takes GET", r.Method))
		return
	}
	httpjson.WriteError(w, http.StatusNotFound, "no resource at "+r.URL.Path)
}

func (h *handlers) serverError(w http.ResponseWriter, what string, err error) {
	h.log.Error("portal: "+what, "err", err)
	httpjson.WriteError(w, http.StatusInternalServerError, "the portal could not answer right now; try again")
}

// inTx runs fn in a transaction of the portal's database and commits.
func (h *handlers) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := h.ob.DB().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// newID returns prefix, '-' and 12 random hex digits.
func newID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return prefix + "-" + hex.EncodeToString(b)
}

func candidatePath(id string) string { return "/candidates/" + id }
func jobPath(id string) string       { return "/jobs/" + id }
