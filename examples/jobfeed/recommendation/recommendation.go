// Package recommendation is the job recommendation service of the job
// feed. It keeps its own copy of every profile and open job, from
// profile.Created and portal.JobPosted events, matches them whenever either
// arrives, and publishes [OpenJobsFound] for each candidate with new
// matches.
//
// A job matches a profile when all of these hold:
//
//   - the job is remote, or the candidate named no locations, or the job's
//     location is one of them (ignoring case);
//   - the candidate has at least the job's min_years of experience;
//   - the candidate has at least half of the job's skills (rounded up).
//
// Its state is in recommendation.db in the data directory (the
// recommendation_ tables on PostgreSQL). Each event is handled in one
// transaction with the inbox record and the events it publishes (package
// outbox), so a redelivered event matches nothing twice, and a match is
// announced once. A profile and a job that arrive together are matched by
// whichever of the two handlers commits second: SQLite runs one writer at a
// time, and on PostgreSQL each handler takes one advisory lock for its
// transaction, so the second sees what the first stored.
package recommendation

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/examples/jobfeed/profile"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the recommendation service's name in the app and on
// --services.
const ServiceName = "recommendation"

// OpenJobsFound is published when new open jobs match a candidate. It
// carries what its two subscribers need (event-carried state): the jobs,
// for the portal's read model, and the candidate's name, email and
// notification preferences, for the notification service, which therefore
// keeps no copy of the candidates and never waits for another event to
// know how to notify.
var OpenJobsFound = troupe.NewTopic[OpenJobsFoundV1]("open_jobs_found", 1)

// OpenJobsFoundV1 is the data of an [OpenJobsFound] event, version 1.
type OpenJobsFoundV1 struct {
	CandidateID string             `json:"candidate_id"`
	Name        string             `json:"name"`
	Email       string             `json:"email"`
	Preferences portal.Preferences `json:"preferences"`
	// Jobs are the jobs newly found for the candidate; none of them was
	// announced for this candidate before.
	Jobs []portal.Match `json:"jobs"`
}

// PortalMatches makes OpenJobsFoundV1 a [portal.MatchData].
func (e OpenJobsFoundV1) PortalMatches() (string, []portal.Match) { return e.CandidateID, e.Jobs }

// JobMatched is published once a posted job has been matched against every
// profile: the end of the job's posting, which the portal shows as
// "matched" or "unmatched".
var JobMatched = troupe.NewTopic[JobMatchedV1]("job_matched", 1)

// JobMatchedV1 is the data of a [JobMatched] event, version 1.
type JobMatchedV1 struct {
	JobID string `json:"job_id"`
	// Candidates counts the candidates the job suited (each hears of it
	// through an [OpenJobsFound] event); 0 when it suited none.
	Candidates int `json:"candidates"`
}

// PortalJobMatched makes JobMatchedV1 a [portal.JobMatchData].
func (e JobMatchedV1) PortalJobMatched() (string, int) { return e.JobID, e.Candidates }

var schema = []string{
	`CREATE TABLE IF NOT EXISTS recommendation_profiles (candidate_id TEXT PRIMARY KEY, profile TEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS recommendation_jobs (job_id TEXT PRIMARY KEY, job TEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS recommendation_matches (
		candidate_id TEXT NOT NULL,
		job_id TEXT NOT NULL,
		found_at BIGINT NOT NULL,
		PRIMARY KEY (candidate_id, job_id))`,
}

// Config says how the recommendation service keeps its state.
type Config struct {
	// DB is where: SQLite files in the data directory, or PostgreSQL. It is
	// read when the app starts.
	DB *store.DB
	// Log receives one line per candidate with new matches. Default: the
	// app's logger.
	Log *slog.Logger
}

// Register declares the recommendation service on app, with its database,
// which opens at start where the service runs.
func Register(app *troupe.App, cfg Config) *troupe.Service {
	log := cfg.Log
	if log == nil {
		log = app.Logger()
	}
	svc := app.Service(ServiceName).Publishes(OpenJobsFound, JobMatched)
	ob := store.Outbox(app, cfg.DB, ServiceName, schema...)
	m := &matcher{log: log, ob: ob}
	outbox.Subscribe(svc, profile.Created, "match-profile", ob, m.profileCreated, troupe.Emits(OpenJobsFound))
	outbox.Subscribe(svc, portal.JobPosted, "match-job", ob, m.jobPosted, troupe.Emits(OpenJobsFound, JobMatched))
	return svc
}

// Matches reports whether job j suits profile p, by the rules of the
// package documentation.
func Matches(p profile.CreatedV1, j portal.Job) bool {
	if !strings.EqualFold(j.Location, "remote") && len(p.Preferences.Locations) > 0 &&
		!slices.ContainsFunc(p.Preferences.Locations, func(l string) bool { return strings.EqualFold(l, j.Location) }) {
		return false
	}
	if p.YearsOfExperience < j.MinYears {
		return false
	}
	have := 0
	for _, s := range j.Skills {
		if slices.Contains(p.Skills, s) {
			have++
		}
	}
	return have > 0 && 2*have >= len(j.Skills)
}

type matcher struct {
	log *slog.Logger
	ob  *outbox.Outbox
}

// q rewrites query's placeholders for the service's database.
func (m *matcher) q(query string) string { return store.Q(m.ob, query) }

// serialize makes the matching handlers take turns on PostgreSQL, where
// two transactions run at once: a profile and a job stored at the same
// moment would each miss the other. SQLite runs one writer at a time
// already.
func (m *matcher) serialize(ctx context.Context, tx *sql.Tx) error {
	if m.ob.Dialect() != outbox.Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('recommendation_matching'))")
	return err
}

// profileCreated stores the profile and matches it against every job.
func (m *matcher) profileCreated(ctx context.Context, tx *sql.Tx, ev troupe.Event[profile.CreatedV1]) error {
	p := ev.Data
	b, err := json.Marshal(p)
	if err != nil {
		return troupe.Permanent(err)
	}
	if err := m.serialize(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, m.q(`INSERT INTO recommendation_profiles (candidate_id, profile) VALUES (?, ?)
		ON CONFLICT (candidate_id) DO UPDATE SET profile = excluded.profile`), p.CandidateID, string(b)); err != nil {
		return err
	}
	jobs, err := readAll[portal.Job](ctx, tx, "SELECT job FROM recommendation_jobs ORDER BY job_id")
	if err != nil {
		return err
	}
	found, err := m.record(ctx, tx, p, jobs)
	if err != nil || len(found.Jobs) == 0 {
		return err
	}
	return outbox.PublishTx(ctx, tx, OpenJobsFound, found)
}

// jobPosted stores the job, matches it against every profile, and says so
// with JobMatched, whatever it found.
func (m *matcher) jobPosted(ctx context.Context, tx *sql.Tx, ev troupe.Event[portal.Job]) error {
	j := ev.Data
	b, err := json.Marshal(j)
	if err != nil {
		return troupe.Permanent(err)
	}
	if err := m.serialize(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, m.q("INSERT INTO recommendation_jobs (job_id, job) VALUES (?, ?) ON CONFLICT DO NOTHING"), j.ID, string(b)); err != nil {
		return err
	}
	profiles, err := readAll[profile.CreatedV1](ctx, tx, "SELECT profile FROM recommendation_profiles ORDER BY candidate_id")
	if err != nil {
		return err
	}
	var out []OpenJobsFoundV1
	for _, p := range profiles {
		found, err := m.record(ctx, tx, p, []portal.Job{j})
		if err != nil {
			return err
		}
		if len(found.Jobs) > 0 {
			out = append(out, found)
		}
	}
	if len(out) > 0 {
		if err := outbox.PublishTx(ctx, tx, OpenJobsFound, out...); err != nil {
			return err
		}
	}
	return outbox.PublishTx(ctx, tx, JobMatched, JobMatchedV1{JobID: j.ID, Candidates: len(out)})
}

// record stores the matches of p among jobs that were not announced yet,
// and returns them as the event that announces them.
func (m *matcher) record(ctx context.Context, tx *sql.Tx, p profile.CreatedV1, jobs []portal.Job) (OpenJobsFoundV1, error) {
	found := OpenJobsFoundV1{CandidateID: p.CandidateID, Name: p.Name, Email: p.Email, Preferences: p.Preferences}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, j := range jobs {
		if !Matches(p, j) {
			continue
		}
		res, err := tx.ExecContext(ctx, m.q("INSERT INTO recommendation_matches (candidate_id, job_id, found_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
			p.CandidateID, j.ID, now.UnixMicro())
		if err != nil {
			return found, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return found, err
			}
			continue // announced before
		}
		found.Jobs = append(found.Jobs, portal.Match{JobID: j.ID, Title: j.Title, Company: j.Company,
			Location: j.Location, Skills: j.Skills, FoundAt: now})
	}
	if len(found.Jobs) > 0 {
		m.log.Info(fmt.Sprintf("recommendation: %d new jobs for candidate %s", len(found.Jobs), p.CandidateID))
	}
	return found, nil
}

// readAll decodes the JSON in the one column of query's rows.
func readAll[T any](ctx context.Context, tx *sql.Tx, query string) ([]T, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
