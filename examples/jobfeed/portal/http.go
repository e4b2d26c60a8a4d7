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
)

// handlers serve the portal's routes.
type handlers struct {
	log  *slog.Logger
	ob   *outbox.Outbox
	db   *sql.DB
	view *view
}

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
	Links  Links  `json:"links"`
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
	// resume, then "profiled".
	Status string `json:"status"`
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

// JobList is the body of GET /jobs.
type JobList struct {
	Count int   `json:"count"`
	Jobs  []Job `json:"jobs"`
}

const candidateExample = `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"daily","locations":["Berlin"]},"resume":"6 years of Go and PostgreSQL"}`

// register signs a candidate up: it stores the registration and writes
// candidate_registered in one transaction. Nothing is stored or published
// for a bad request.
func (h *handlers) register(w http.ResponseWriter, r *http.Request) {
	var req Registration
	if status, err := api.Decode(w, r, &req, candidateExample); err != nil {
		httpjson.WriteError(w, status, err.Error())
		return
	}
	req, err := validRegistration(req)
	if err != nil {
		httpjson.WriteError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	id := newID("cand")
	locs, _ := json.Marshal(req.Preferences.Locations)
	ctx := outbox.WithOutbox(troupe.WithCorrelationID(r.Context(), id), h.ob)
	err = h.inTx(ctx, func(tx *sql.Tx) error {
		var taken int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM candidates WHERE email = ?", req.Email).Scan(&taken); err != nil {
			return err
		}
		if taken > 0 {
			return errEmailTaken
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO candidates (id, name, email, frequency, locations, resume, registered_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, id, req.Name, req.Email, string(req.Preferences.Frequency), string(locs), req.Resume,
			time.Now().UnixMicro()); err != nil {
			return err
		}
		return outbox.PublishTx(ctx, tx, CandidateRegistered, CandidateRegisteredV1{CandidateID: id, Href: candidatePath(id)})
	})
	switch {
	case errors.Is(err, errEmailTaken):
		httpjson.WriteError(w, http.StatusConflict, fmt.Sprintf("a candidate with email %s is already registered", req.Email))
		return
	case err != nil:
		h.log.Error("portal: could not register a candidate", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the registration could not be stored right now; try again")
		return
	}
	h.log.Info(fmt.Sprintf("portal: registered candidate %s (%s), %s notifications", id, req.Name, req.Preferences.Frequency))
	w.Header().Set("Location", candidatePath(id))
	httpjson.WriteJSON(w, http.StatusCreated, Created{ID: id, Status: "registered", Links: Links{Self: candidatePath(id)}})
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
		if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, title, company, location, skills, min_years, posted_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, job.ID, job.Title, job.Company, job.Location, string(sk), job.MinYears,
			job.PostedAt.UnixMicro()); err != nil {
			return err
		}
		return outbox.PublishTx(ctx, tx, JobPosted, job)
	})
	if err != nil {
		h.log.Error("portal: could not post a job", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the job could not be stored right now; try again")
		return
	}
	h.log.Info(fmt.Sprintf("portal: posted job %s, %s at %s (%s)", job.ID, job.Title, job.Company, job.Location))
	w.Header().Set("Location", jobPath(job.ID))
	httpjson.WriteJSON(w, http.StatusCreated, Created{ID: job.ID, Status: "open", Links: Links{Self: jobPath(job.ID)}})
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
	c := Candidate{ID: id, Status: "registered", Matches: []Match{}, Links: Links{Self: candidatePath(id)}}
	var locs string
	var at int64
	err := h.db.QueryRowContext(ctx, "SELECT name, email, frequency, locations, resume, registered_at FROM candidates WHERE id = ?", id).
		Scan(&c.Name, &c.Email, &c.Preferences.Frequency, &locs, &c.Resume, &at)
	if errors.Is(err, sql.ErrNoRows) {
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("no candidate %q", id))
		return
	}
	if err == nil {
		c.RegisteredAt = time.UnixMicro(at).UTC()
		err = json.Unmarshal([]byte(locs), &c.Preferences.Locations)
	}
	var p Profile
	var found bool
	var profiledAt time.Time
	if err == nil {
		p, profiledAt, found, err = h.view.profile(ctx, id)
	}
	if err == nil {
		c.Matches, err = h.view.matches(ctx, id)
	}
	if err != nil {
		h.serverError(w, "read candidate "+id, err)
		return
	}
	if found {
		c.Status = "profiled"
		c.Profile = &ProfileSummary{Skills: p.Skills, YearsOfExperience: p.YearsOfExperience, ProfiledAt: profiledAt}
	}
	httpjson.WriteJSON(w, http.StatusOK, c)
}

// jobs serves the open jobs, newest first.
func (h *handlers) jobs(w http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	list, err := h.readJobs(r.Context(), "ORDER BY posted_at DESC, id LIMIT ?", listLimit)
	if err != nil {
		h.serverError(w, "list jobs", err)
		return
	}
	var n int
	if err := h.db.QueryRowContext(r.Context(), "SELECT count(*) FROM jobs").Scan(&n); err != nil {
		h.serverError(w, "count jobs", err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, JobList{Count: n, Jobs: list})
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

func (h *handlers) readJobs(ctx context.Context, where string, args ...any) ([]Job, error) {
	rows, err := h.db.QueryContext(ctx, "SELECT id, title, company, location, skills, min_years, posted_at FROM jobs "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Job{}
	for rows.Next() {
		var j Job
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
	return out, rows.Err()
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
		Routes: []string{"POST /candidates", "GET /candidates/{id}", "POST /jobs", "GET /jobs", "GET /jobs/{id}",
			"GET /notifications (notification service)"},
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
	tx, err := h.db.BeginTx(ctx, nil)
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
