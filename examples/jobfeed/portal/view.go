package portal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/outbox"
)

// ViewFile names the read model's database: the SQLite file
// portal-view.db in the data directory (delete it, with its -wal and -shm
// companions, while the app is stopped, and the next start rebuilds it from
// the broker's history), or the portal_view_ tables on PostgreSQL.
const ViewFile = "portal-view"

var viewSchema = []string{
	`CREATE TABLE IF NOT EXISTS portal_view_profiles (
		candidate_id TEXT PRIMARY KEY,
		profile TEXT NOT NULL,
		profiled_at BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS portal_view_matches (
		candidate_id TEXT NOT NULL,
		job_id TEXT NOT NULL,
		match TEXT NOT NULL,
		found_at BIGINT NOT NULL,
		PRIMARY KEY (candidate_id, job_id))`,
	`CREATE TABLE IF NOT EXISTS portal_view_failures (
		candidate_id TEXT PRIMARY KEY,
		reason TEXT NOT NULL,
		failed_at BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS portal_view_jobs (
		job_id TEXT PRIMARY KEY,
		candidates INTEGER NOT NULL,
		matched_at BIGINT NOT NULL)`,
	// applied holds the id of every event applied, so a redelivery, or an
	// event both replayed by a rebuild and delivered live, counts once.
	`CREATE TABLE IF NOT EXISTS portal_view_applied (event_id TEXT PRIMARY KEY)`,
	// meta holds built_at (set once the model holds all history) and
	// rebuilt_events (how many events the last rebuild replayed).
	`CREATE TABLE IF NOT EXISTS portal_view_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
}

// ViewSource is a topic the portal's read model follows; make one with
// [Profiles], [Matches], [Failures] or [JobsMatched] and pass it to
// [Register].
type ViewSource struct {
	subscribe func(svc *troupe.Service, v *view)
	topic     troupe.AnyTopic
	// decode applies one event's JSON data to v; for the rebuild, which
	// reads raw events from the broker.
	decode func(ctx context.Context, v *view, env troupe.Envelope, data []byte) error
}

// Profiles makes the read model follow t, whose events carry candidate
// profiles.
func Profiles[T ProfileData](t *troupe.Topic[T]) ViewSource {
	apply := func(ctx context.Context, v *view, env troupe.Envelope, d T) error {
		id, p := d.PortalProfile()
		b, err := json.Marshal(p)
		if err != nil {
			return troupe.Permanent(err)
		}
		return v.apply(ctx, env.ID, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, v.h.Q(`INSERT INTO portal_view_profiles (candidate_id, profile, profiled_at) VALUES (?, ?, ?)
				ON CONFLICT (candidate_id) DO UPDATE SET profile = excluded.profile, profiled_at = excluded.profiled_at
				WHERE excluded.profiled_at >= portal_view_profiles.profiled_at`), id, string(b), env.Time.UnixMicro())
			return err
		})
	}
	return source(t, "view-profiles", apply)
}

// Matches makes the read model follow t, whose events carry jobs found for
// candidates.
func Matches[T MatchData](t *troupe.Topic[T]) ViewSource {
	apply := func(ctx context.Context, v *view, env troupe.Envelope, d T) error {
		id, ms := d.PortalMatches()
		return v.apply(ctx, env.ID, func(tx *sql.Tx) error {
			for _, m := range ms {
				b, err := json.Marshal(m)
				if err != nil {
					return troupe.Permanent(err)
				}
				if _, err := tx.ExecContext(ctx, v.h.Q(`INSERT INTO portal_view_matches (candidate_id, job_id, match, found_at) VALUES (?, ?, ?, ?)
					ON CONFLICT DO NOTHING`), id, m.JobID, string(b), m.FoundAt.UnixMicro()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return source(t, "view-matches", apply)
}

// Failures makes the read model follow t, whose events say that a
// candidate's resume could not be read.
func Failures[T FailureData](t *troupe.Topic[T]) ViewSource {
	apply := func(ctx context.Context, v *view, env troupe.Envelope, d T) error {
		id, reason := d.PortalFailure()
		return v.apply(ctx, env.ID, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, v.h.Q(`INSERT INTO portal_view_failures (candidate_id, reason, failed_at) VALUES (?, ?, ?)
				ON CONFLICT DO NOTHING`), id, reason, env.Time.UnixMicro())
			return err
		})
	}
	return source(t, "view-failures", apply)
}

// JobsMatched makes the read model follow t, whose events say that a job
// was matched against every profile.
func JobsMatched[T JobMatchData](t *troupe.Topic[T]) ViewSource {
	apply := func(ctx context.Context, v *view, env troupe.Envelope, d T) error {
		id, n := d.PortalJobMatched()
		return v.apply(ctx, env.ID, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, v.h.Q(`INSERT INTO portal_view_jobs (job_id, candidates, matched_at) VALUES (?, ?, ?)
				ON CONFLICT DO NOTHING`), id, n, env.Time.UnixMicro())
			return err
		})
	}
	return source(t, "view-jobs", apply)
}

func source[T any](t *troupe.Topic[T], name string, apply func(context.Context, *view, troupe.Envelope, T) error) ViewSource {
	return ViewSource{
		topic: t,
		subscribe: func(svc *troupe.Service, v *view) {
			// StartAtBeginning: the first time the subscription is declared,
			// it receives the whole history of the topic, so a read model
			// added to a running system starts complete (on brokers that
			// keep history; RabbitMQ does not).
			troupe.Subscribe(svc, t, name, func(ctx context.Context, ev troupe.Event[T]) error {
				if v.h.DB() == nil {
					return errNotHere
				}
				return apply(ctx, v, ev.Envelope, ev.Data)
			}, troupe.StartAtBeginning())
		},
		decode: func(ctx context.Context, v *view, env troupe.Envelope, data []byte) error {
			var d T
			if err := json.Unmarshal(data, &d); err != nil {
				return fmt.Errorf("%w: event %s (%s): %v", errUnreadable, env.ID, env.Type, err)
			}
			return apply(ctx, v, env, d)
		},
	}
}

// errUnreadable marks event data that does not decode.
var errUnreadable = errors.New("unreadable event data")

var errNotHere = errors.New("portal: the portal service does not run in this process")

// view is the portal's read model: each candidate's profile, matches or
// failure, and each job's matching, built only from events and stored in
// its own database, so that it survives restarts and can be thrown away
// and built again.
type view struct {
	h       *store.Handle
	log     *slog.Logger
	sources []ViewSource
}

// apply runs fn in a transaction that first records event id; an event
// already recorded changes nothing.
func (v *view) apply(ctx context.Context, id string, fn func(tx *sql.Tx) error) error {
	tx, err := v.h.DB().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, v.h.Q("INSERT INTO portal_view_applied (event_id) VALUES (?) ON CONFLICT DO NOTHING"), id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// state is what the read model knows of one candidate.
type state struct {
	Status     string
	Profile    Profile
	ProfiledAt time.Time
	Reason     string
}

// candidate returns what the read model knows of candidate id: profiled
// (with the profile), failed (with the reason), or nothing yet.
func (v *view) candidate(ctx context.Context, id string) (state, error) {
	var raw string
	var at int64
	err := v.h.DB().QueryRowContext(ctx, v.h.Q("SELECT profile, profiled_at FROM portal_view_profiles WHERE candidate_id = ?"), id).Scan(&raw, &at)
	switch {
	case err == nil:
		st := state{Status: StatusProfiled, ProfiledAt: time.UnixMicro(at).UTC()}
		return st, json.Unmarshal([]byte(raw), &st.Profile)
	case !errors.Is(err, sql.ErrNoRows):
		return state{}, err
	}
	var reason string
	err = v.h.DB().QueryRowContext(ctx, v.h.Q("SELECT reason FROM portal_view_failures WHERE candidate_id = ?"), id).Scan(&reason)
	switch {
	case err == nil:
		return state{Status: StatusProfileFailed, Reason: reason}, nil
	case errors.Is(err, sql.ErrNoRows):
		return state{Status: StatusRegistered}, nil
	}
	return state{}, err
}

// matches returns the jobs found for a candidate, oldest first.
func (v *view) matches(ctx context.Context, id string) ([]Match, error) {
	rows, err := v.h.DB().QueryContext(ctx, v.h.Q("SELECT match FROM portal_view_matches WHERE candidate_id = ? ORDER BY found_at, job_id"), id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Match{}
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var m Match
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// outcomes counts the candidates the read model saw profiled, and those it
// saw fail and not profiled.
func (v *view) outcomes(ctx context.Context) (profiled, failed int, err error) {
	err = v.h.DB().QueryRowContext(ctx, `SELECT (SELECT count(*) FROM portal_view_profiles),
		(SELECT count(*) FROM portal_view_failures f WHERE NOT EXISTS
			(SELECT 1 FROM portal_view_profiles p WHERE p.candidate_id = f.candidate_id))`).Scan(&profiled, &failed)
	return profiled, failed, err
}

// jobOutcomes counts the jobs the read model saw matched, with and
// without a candidate.
func (v *view) jobOutcomes(ctx context.Context) (matched, unmatched int, err error) {
	err = v.h.DB().QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM portal_view_jobs WHERE candidates > 0),
		(SELECT count(*) FROM portal_view_jobs WHERE candidates = 0)`).Scan(&matched, &unmatched)
	return matched, unmatched, err
}

// job returns how job id was matched: its status and how many candidates
// it suited.
func (v *view) job(ctx context.Context, id string) (string, int, error) {
	var n int
	err := v.h.DB().QueryRowContext(ctx, v.h.Q("SELECT candidates FROM portal_view_jobs WHERE job_id = ?"), id).Scan(&n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return JobStatusPosted, 0, nil
	case err != nil:
		return "", 0, err
	case n == 0:
		return JobStatusUnmatched, 0, nil
	}
	return JobStatusMatched, n, nil
}

// ViewStats describes the read model, for GET /.
type ViewStats struct {
	// Store is where the read model is: the SQLite file portal-view.db in
	// the data directory, or the portal_view_ tables on PostgreSQL.
	Store string `json:"store"`
	// EventsApplied counts the events the model holds.
	EventsApplied int `json:"events_applied"`
	// Profiles, Matches, Failures and Jobs count its rows.
	Profiles int `json:"profiles"`
	Matches  int `json:"matches"`
	Failures int `json:"failures"`
	Jobs     int `json:"jobs"`
	// BuiltAt is when the model was (re)built from the broker's history;
	// RebuiltEvents is how many events that replayed.
	BuiltAt       string `json:"built_at,omitempty"`
	RebuiltEvents int    `json:"rebuilt_events"`
}

func (v *view) stats(ctx context.Context) (ViewStats, error) {
	s := ViewStats{Store: ViewFile + ".db"}
	if store.Dialect(v.h.DB()) != outbox.SQLite {
		s.Store = "portal_view_ tables"
	}
	var builtAt, rebuilt sql.NullString
	err := v.h.DB().QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM portal_view_applied), (SELECT count(*) FROM portal_view_profiles),
		(SELECT count(*) FROM portal_view_matches), (SELECT count(*) FROM portal_view_failures),
		(SELECT count(*) FROM portal_view_jobs),
		(SELECT value FROM portal_view_meta WHERE key = 'built_at'), (SELECT value FROM portal_view_meta WHERE key = 'rebuilt_events')`).
		Scan(&s.EventsApplied, &s.Profiles, &s.Matches, &s.Failures, &s.Jobs, &builtAt, &rebuilt)
	if err != nil {
		return s, err
	}
	s.BuiltAt = builtAt.String
	if rebuilt.Valid {
		s.RebuiltEvents, _ = strconv.Atoi(rebuilt.String)
	}
	return s, nil
}
