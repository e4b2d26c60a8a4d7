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
// Its state is in recommendation.db in the data directory. Each event is
// handled in one transaction with the inbox record and the events it
// publishes (package outbox), so a redelivered event matches nothing twice,
// and a match is announced once. SQLite runs one writer at a time, so a
// profile and a job that arrive together are matched by whichever of the
// two handlers commits second; on PostgreSQL the handlers would need
// serializable transactions for the same promise.
package recommendation

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/jobfeed/internal/sqlstore"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/examples/jobfeed/profile"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the recommendation service's name in the app and on
// --services.
const ServiceName = "recommendation"

// File is the service's database in the data directory.
const File = "recommendation.db"

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

var schema = []string{
	`CREATE TABLE IF NOT EXISTS profiles (candidate_id TEXT PRIMARY KEY, profile TEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, job TEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS matches (
		candidate_id TEXT NOT NULL,
		job_id TEXT NOT NULL,
		found_at INTEGER NOT NULL,
		PRIMARY KEY (candidate_id, job_id))`,
}

// Config says how the recommendation service runs in this process.
type Config struct {
	// DataDir holds the service's database. Required when Run is true.
	DataDir string
	// Run is whether this process runs the service; when false it is only
	// declared.
	Run bool
	// Log receives one line per candidate with new matches. Default: the
	// app's logger.
	Log *slog.Logger
}

// Register declares the recommendation service on app.
func Register(app *troupe.App, cfg Config) (*troupe.Service, error) {
	log := cfg.Log
	if log == nil {
		log = app.Logger()
	}
	svc := app.Service(ServiceName).Publishes(OpenJobsFound)
	if !cfg.Run {
		// Declared only, so that the broker keeps the events for the
		// process that runs the service; never called here.
		notHere := errors.New("recommendation: the service does not run in this process")
		troupe.Subscribe(svc, profile.Created, "match-profile", func(context.Context, troupe.Event[profile.CreatedV1]) error { return notHere },
			troupe.Emits(OpenJobsFound))
		troupe.Subscribe(svc, portal.JobPosted, "match-job", func(context.Context, troupe.Event[portal.Job]) error { return notHere },
			troupe.Emits(OpenJobsFound))
		return svc, nil
	}
	ob, err := sqlstore.Outbox(app, cfg.DataDir, File, nil, schema...)
	if err != nil {
		return nil, fmt.Errorf("recommendation: %w", err)
	}
	m := &matcher{log: log}
	outbox.Subscribe(svc, profile.Created, "match-profile", ob, m.profileCreated, troupe.Emits(OpenJobsFound))
	outbox.Subscribe(svc, portal.JobPosted, "match-job", ob, m.jobPosted, troupe.Emits(OpenJobsFound))
	return svc, nil
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
}

// profileCreated stores the profile and matches it against every job.
func (m *matcher) profileCreated(ctx context.Context, tx *sql.Tx, ev troupe.Event[profile.CreatedV1]) error {
	p := ev.Data
	b, err := json.Marshal(p)
	if err != nil {
		return troupe.Permanent(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO profiles (candidate_id, profile) VALUES (?, ?)
		ON CONFLICT (candidate_id) DO UPDATE SET profile = excluded.profile`, p.CandidateID, string(b)); err != nil {
		return err
	}
	jobs, err := readAll[portal.Job](ctx, tx, "SELECT job FROM jobs ORDER BY job_id")
	if err != nil {
		return err
	}
	found, err := m.record(ctx, tx, p, jobs)
	if err != nil || len(found.Jobs) == 0 {
		return err
	}
	return outbox.PublishTx(ctx, tx, OpenJobsFound, found)
}

// jobPosted stores the job and matches it against every profile.
func (m *matcher) jobPosted(ctx context.Context, tx *sql.Tx, ev troupe.Event[portal.Job]) error {
	j := ev.Data
	b, err := json.Marshal(j)
	if err != nil {
		return troupe.Permanent(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO jobs (job_id, job) VALUES (?, ?) ON CONFLICT DO NOTHING", j.ID, string(b)); err != nil {
		return err
	}
	profiles, err := readAll[profile.CreatedV1](ctx, tx, "SELECT profile FROM profiles ORDER BY candidate_id")
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
	if len(out) == 0 {
		return nil
	}
	return outbox.PublishTx(ctx, tx, OpenJobsFound, out...)
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
		res, err := tx.ExecContext(ctx, "INSERT INTO matches (candidate_id, job_id, found_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
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
