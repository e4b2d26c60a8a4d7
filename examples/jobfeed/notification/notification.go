// Package notification is the notification service of the job feed. It
// tells candidates about the jobs found for them, when they asked to hear:
// at once ("instant"), or in a digest once a day, a week or a month.
//
// Instead of mail it keeps what it sends in its database, shown at
//
//	GET /notifications                  every message, oldest first, and the matches waiting for a digest
//	GET /notifications?candidate=ID     the same for one candidate
//
// Matches waiting for a digest are rows in notification.db in the data
// directory. The digests are outbox schedules (Outbox.Schedule): when a
// period begins, one transaction records the period, turns each
// candidate's waiting matches into one message and deletes them. However
// many instances of the service share the database, one of them runs each
// period, once; the others find the period recorded and skip it.
package notification

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/jobfeed/internal/api"
	"github.com/troupe-go/troupe/examples/jobfeed/internal/sqlstore"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/examples/jobfeed/recommendation"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the notification service's name in the app and on
// --services.
const ServiceName = "notification"

// File is the service's database in the data directory. Every instance
// of the service must use the same file.
const File = "notification.db"

// Default digest schedules (see outbox.ParseSpec), in UTC.
const (
	DefaultDaily   = "daily at 08:00"
	DefaultWeekly  = "weekly on monday at 08:00"
	DefaultMonthly = "monthly on 1 at 08:00"
)

var schema = []string{
	`CREATE TABLE IF NOT EXISTS waiting (
		candidate_id TEXT NOT NULL,
		job_id TEXT NOT NULL,
		name TEXT NOT NULL,
		email TEXT NOT NULL,
		frequency TEXT NOT NULL,
		job TEXT NOT NULL,
		found_at INTEGER NOT NULL,
		PRIMARY KEY (candidate_id, job_id))`,
	`CREATE INDEX IF NOT EXISTS waiting_by_frequency ON waiting (frequency, found_at)`,
	`CREATE TABLE IF NOT EXISTS sent (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		candidate_id TEXT NOT NULL,
		email TEXT NOT NULL,
		kind TEXT NOT NULL,
		period TEXT NOT NULL,
		jobs TEXT NOT NULL,
		text TEXT NOT NULL,
		sent_at INTEGER NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS sent_by_candidate ON sent (candidate_id, id)`,
}

// Config says how the notification service runs in this process.
type Config struct {
	// DataDir holds the service's database. Required when Run is true.
	DataDir string
	// Run is whether this process runs the service; when false it is only
	// declared.
	Run bool
	// Clock times the digests and stamps the messages. Default: the system
	// clock. Tests pass a troupetest.Clock.
	Clock outbox.Clock
	// Daily, Weekly and Monthly are the digests' schedules. Defaults:
	// [DefaultDaily], [DefaultWeekly], [DefaultMonthly].
	Daily, Weekly, Monthly string
	// Log receives one line per message. Default: the app's logger.
	Log *slog.Logger
}

// Register declares the notification service on app, and its digest
// schedules when it runs in this process.
func Register(app *troupe.App, cfg Config) (*troupe.Service, error) {
	log := cfg.Log
	if log == nil {
		log = app.Logger()
	}
	svc := app.Service(ServiceName)
	n := &notifier{log: log}
	svc.HandleFunc("GET /notifications", n.serve)
	svc.HandleFunc("/notifications", httpjson.Fallback("/notifications", "GET"))
	if !cfg.Run {
		troupe.Subscribe(svc, recommendation.OpenJobsFound, "notify", func(context.Context, troupe.Event[recommendation.OpenJobsFoundV1]) error {
			return errors.New("notification: the service does not run in this process")
		})
		return svc, nil
	}
	ob, err := sqlstore.Outbox(app, cfg.DataDir, File, cfg.Clock, schema...)
	if err != nil {
		return nil, fmt.Errorf("notification: %w", err)
	}
	n.db, n.clock = ob.DB(), cfg.Clock
	if n.clock == nil {
		n.clock = systemClock{}
	}
	outbox.Subscribe(svc, recommendation.OpenJobsFound, "notify", ob, n.found)
	for _, d := range []struct {
		f          portal.Frequency
		spec, dflt string
	}{{portal.Daily, cfg.Daily, DefaultDaily}, {portal.Weekly, cfg.Weekly, DefaultWeekly}, {portal.Monthly, cfg.Monthly, DefaultMonthly}} {
		spec := d.spec
		if spec == "" {
			spec = d.dflt
		}
		// Catching up a whole period: an instance that starts after all
		// were down at 08:00 still sends that day's (week's, month's)
		// digest; the periods table keeps it from going out twice.
		if err := ob.Schedule("digest-"+string(d.f), spec, n.digest(d.f), outbox.ScheduleOptions{CatchUp: 24 * time.Hour}); err != nil {
			return nil, fmt.Errorf("notification: %s digest: %w", d.f, err)
		}
	}
	return svc, nil
}

// systemClock tells the real time, for the timestamps of messages and
// waiting matches when Config.Clock is nil (the outbox then uses the
// system clock too).
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Message is one message sent to a candidate.
type Message struct {
	ID          int64  `json:"id"`
	CandidateID string `json:"candidate_id"`
	Email       string `json:"email"`
	// Kind is "instant", "daily", "weekly" or "monthly".
	Kind portal.Frequency `json:"kind"`
	// Period is the start of the digest's period (RFC 3339); empty for an
	// instant message.
	Period string         `json:"period,omitempty"`
	Jobs   []portal.Match `json:"jobs"`
	Text   string         `json:"text"`
	SentAt time.Time      `json:"sent_at"`
}

// Sent is the body of GET /notifications.
type Sent struct {
	Count    int       `json:"count"`
	Messages []Message `json:"messages"`
	// Waiting counts the matches waiting for a digest, by frequency.
	Waiting map[portal.Frequency]int `json:"waiting"`
}

type notifier struct {
	log   *slog.Logger
	db    *sql.DB
	clock outbox.Clock
}

// found is the handler of recommendation.OpenJobsFound, run in the inbox's
// transaction: a candidate who wants to hear at once gets a message now;
// the others' matches wait for their digest.
func (n *notifier) found(ctx context.Context, tx *sql.Tx, ev troupe.Event[recommendation.OpenJobsFoundV1]) error {
	e := ev.Data
	now := n.clock.Now().UTC()
	if e.Preferences.Frequency == portal.Instant {
		return n.send(ctx, tx, e.CandidateID, e.Email, e.Name, portal.Instant, "", e.Jobs, now)
	}
	for _, j := range e.Jobs {
		b, err := json.Marshal(j)
		if err != nil {
			return troupe.Permanent(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO waiting (candidate_id, job_id, name, email, frequency, job, found_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			e.CandidateID, j.JobID, e.Name, e.Email, string(e.Preferences.Frequency), string(b), now.UnixMicro()); err != nil {
			return err
		}
	}
	return nil
}

// digest returns the schedule function of one frequency: every match of
// that frequency found before the period began goes into one message per
// candidate, and stops waiting.
func (n *notifier) digest(f portal.Frequency) outbox.ScheduleFunc {
	return func(ctx context.Context, tx *sql.Tx, tick outbox.Tick) error {
		rows, err := tx.QueryContext(ctx, `SELECT candidate_id, name, email, job FROM waiting
			WHERE frequency = ? AND found_at < ? ORDER BY candidate_id, found_at, job_id`, string(f), tick.Period.UnixMicro())
		if err != nil {
			return err
		}
		type batch struct {
			id, name, email string
			jobs            []portal.Match
		}
		var batches []*batch
		for rows.Next() {
			var id, name, email, raw string
			if err := rows.Scan(&id, &name, &email, &raw); err != nil {
				rows.Close()
				return err
			}
			var j portal.Match
			if err := json.Unmarshal([]byte(raw), &j); err != nil {
				rows.Close()
				return err
			}
			if len(batches) == 0 || batches[len(batches)-1].id != id {
				batches = append(batches, &batch{id: id, name: name, email: email})
			}
			b := batches[len(batches)-1]
			b.jobs = append(b.jobs, j)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		period := tick.Period.UTC().Format(time.RFC3339)
		now := n.clock.Now().UTC()
		for _, b := range batches {
			if err := n.send(ctx, tx, b.id, b.email, b.name, f, period, b.jobs, now); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM waiting WHERE frequency = ? AND found_at < ?", string(f), tick.Period.UnixMicro())
		return err
	}
}

// send records a message in tx; it stands in for a mail gateway.
func (n *notifier) send(ctx context.Context, tx *sql.Tx, id, email, name string, kind portal.Frequency, period string, jobs []portal.Match, at time.Time) error {
	b, err := json.Marshal(jobs)
	if err != nil {
		return troupe.Permanent(err)
	}
	text := compose(name, kind, jobs)
	if _, err := tx.ExecContext(ctx, `INSERT INTO sent (candidate_id, email, kind, period, jobs, text, sent_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, id, email, string(kind), period, string(b), text, at.UnixMicro()); err != nil {
		return err
	}
	n.log.Info(fmt.Sprintf("notification: %s message to %s about %d jobs", kind, email, len(jobs)))
	return nil
}

// compose writes the message's text.
func compose(name string, kind portal.Frequency, jobs []portal.Match) string {
	var sb strings.Builder
	switch kind {
	case portal.Instant:
		fmt.Fprintf(&sb, "Hello %s, we found %d new job(s) for you:", name, len(jobs))
	default:
		fmt.Fprintf(&sb, "Hello %s, your %s digest has %d new job(s):", name, kind, len(jobs))
	}
	for _, j := range jobs {
		fmt.Fprintf(&sb, "\n- %s at %s (%s)", j.Title, j.Company, j.Location)
	}
	return sb.String()
}

// serve lists the messages sent and the matches waiting.
func (n *notifier) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := httpjson.CheckQuery(q, "candidate"); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	id := q.Get("candidate")
	if q.Has("candidate") && !api.ValidID(id) {
		httpjson.WriteError(w, http.StatusBadRequest, "candidate must be a candidate id: 1 to 64 letters, digits or '-'")
		return
	}
	out, err := n.read(r.Context(), id)
	if err != nil {
		n.log.Error("notification: list messages", "err", err)
		httpjson.WriteError(w, http.StatusInternalServerError, "the messages could not be read right now; try again")
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// read returns the messages and waiting matches of candidate id, or of
// everyone for "".
func (n *notifier) read(ctx context.Context, id string) (Sent, error) {
	out := Sent{Messages: []Message{}, Waiting: map[portal.Frequency]int{portal.Daily: 0, portal.Weekly: 0, portal.Monthly: 0}}
	rows, err := n.db.QueryContext(ctx, `SELECT id, candidate_id, email, kind, period, jobs, text, sent_at FROM sent
		WHERE ? = '' OR candidate_id = ? ORDER BY id`, id, id)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var m Message
		var jobs string
		var at int64
		if err := rows.Scan(&m.ID, &m.CandidateID, &m.Email, &m.Kind, &m.Period, &jobs, &m.Text, &at); err != nil {
			return out, err
		}
		if err := json.Unmarshal([]byte(jobs), &m.Jobs); err != nil {
			return out, err
		}
		m.SentAt = time.UnixMicro(at).UTC()
		out.Messages = append(out.Messages, m)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	out.Count = len(out.Messages)
	wrows, err := n.db.QueryContext(ctx, "SELECT frequency, count(*) FROM waiting WHERE ? = '' OR candidate_id = ? GROUP BY frequency", id, id)
	if err != nil {
		return out, err
	}
	defer wrows.Close()
	for wrows.Next() {
		var f portal.Frequency
		var c int
		if err := wrows.Scan(&f, &c); err != nil {
			return out, err
		}
		out.Waiting[f] = c
	}
	return out, wrows.Err()
}
