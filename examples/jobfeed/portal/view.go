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
)

// ViewFile is the read model's database in the data directory. Delete it
// (with its -wal and -shm companions) while the app is stopped, and the
// next start rebuilds it from the broker's history.
const ViewFile = "portal-view.db"

var viewSchema = []string{
	`CREATE TABLE IF NOT EXISTS profiles (
		candidate_id TEXT PRIMARY KEY,
		profile TEXT NOT NULL,
		profiled_at INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS matches (
		candidate_id TEXT NOT NULL,
		job_id TEXT NOT NULL,
		match TEXT NOT NULL,
		found_at INTEGER NOT NULL,
		PRIMARY KEY (candidate_id, job_id))`,
	// applied holds the id of every event applied, so a redelivery, or an
	// event both replayed by a rebuild and delivered live, counts once.
	`CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY)`,
	// meta holds built_at (set once the model holds all history) and
	// rebuilt_events (how many events the last rebuild replayed).
	`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
}

// ViewSource is a topic the portal's read model follows; make one with
// [Profiles] or [Matches] and pass it to [Register].
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
			_, err := tx.ExecContext(ctx, `INSERT INTO profiles (candidate_id, profile, profiled_at) VALUES (?, ?, ?)
				ON CONFLICT (candidate_id) DO UPDATE SET profile = excluded.profile, profiled_at = excluded.profiled_at
				WHERE excluded.profiled_at >= profiles.profiled_at`, id, string(b), env.Time.UnixMicro())
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
				if _, err := tx.ExecContext(ctx, `INSERT INTO matches (candidate_id, job_id, match, found_at) VALUES (?, ?, ?, ?)
					ON CONFLICT DO NOTHING`, id, m.JobID, string(b), m.FoundAt.UnixMicro()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return source(t, "view-matches", apply)
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
				if v.db == nil {
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

// view is the portal's read model: each candidate's profile and matches,
// built only from events, so that it can be thrown away and built again.
type view struct {
	db      *sql.DB
	log     *slog.Logger
	sources []ViewSource
}

// apply runs fn in a transaction that first records event id; an event
// already recorded changes nothing.
func (v *view) apply(ctx context.Context, id string, fn func(tx *sql.Tx) error) error {
	tx, err := v.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "INSERT INTO applied (event_id) VALUES (?) ON CONFLICT DO NOTHING", id)
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

// profile returns the candidate's profile and when it was made, or false.
func (v *view) profile(ctx context.Context, id string) (Profile, time.Time, bool, error) {
	var raw string
	var at int64
	err := v.db.QueryRowContext(ctx, "SELECT profile, profiled_at FROM profiles WHERE candidate_id = ?", id).Scan(&raw, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Profile{}, time.Time{}, false, nil
	}
	if err != nil {
		return Profile{}, time.Time{}, false, err
	}
	var p Profile
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return Profile{}, time.Time{}, false, err
	}
	return p, time.UnixMicro(at).UTC(), true, nil
}

// matches returns the jobs found for a candidate, oldest first.
func (v *view) matches(ctx context.Context, id string) ([]Match, error) {
	rows, err := v.db.QueryContext(ctx, "SELECT match FROM matches WHERE candidate_id = ? ORDER BY found_at, job_id", id)
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

// ViewStats describes the read model, for GET /.
type ViewStats struct {
	// File is the database file of the read model.
	File string `json:"file"`
	// EventsApplied counts the events the model holds.
	EventsApplied int `json:"events_applied"`
	// Profiles and Matches count its rows.
	Profiles int `json:"profiles"`
	Matches  int `json:"matches"`
	// BuiltAt is when the model was (re)built from the broker's history;
	// RebuiltEvents is how many events that replayed.
	BuiltAt       string `json:"built_at,omitempty"`
	RebuiltEvents int    `json:"rebuilt_events"`
}

func (v *view) stats(ctx context.Context) (ViewStats, error) {
	s := ViewStats{File: ViewFile}
	var builtAt, rebuilt sql.NullString
	err := v.db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM applied), (SELECT count(*) FROM profiles), (SELECT count(*) FROM matches),
		(SELECT value FROM meta WHERE key = 'built_at'), (SELECT value FROM meta WHERE key = 'rebuilt_events')`).
		Scan(&s.EventsApplied, &s.Profiles, &s.Matches, &builtAt, &rebuilt)
	if err != nil {
		return s, err
	}
	s.BuiltAt = builtAt.String
	if rebuilt.Valid {
		s.RebuiltEvents, _ = strconv.Atoi(rebuilt.String)
	}
	return s, nil
}
