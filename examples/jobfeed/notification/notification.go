// Package notification is the notification service of the job feed. It
// tells candidates about the jobs found for them, when they asked to hear:
// at once ("instant"), or in a digest once a day, a week or a month.
//
// It sends through the messenger (package examples/internal/messenger),
// the mail provider of the examples, an outside system with a record of its
// own, and keeps its own state in its database (notification.db in the
// data directory, or the notification_ tables on PostgreSQL):
//
//   - the matches waiting for a digest;
//   - every message it decided to send, with its status: "due" once
//     decided, "sent" once the messenger took it, or "failed" if the
//     messenger refused it through every attempt.
//
// A message is decided in one transaction (the inbox's, or a digest
// period's) that also writes a [MessageDue] event to the outbox; the
// handler of that event sends it with the message's id as the
// messenger's idempotency key and marks it sent. A crash anywhere in
// between sends it again under the same key, which the messenger counts as
// a repeat and does not send: a candidate never hears the same thing twice.
//
// The digests are outbox schedules (Outbox.Schedule): when a period begins,
// one transaction records the period, turns each candidate's waiting
// matches into one due message and deletes them. However many instances of
// the service share the database, one of them runs each period, once; the
// others find the period recorded and skip it.
//
//	GET /notifications                  counts by status, the newest messages, the matches waiting, the messenger's stats
//	GET /notifications?candidate=ID     the same for one candidate, with all their messages
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
	"github.com/troupe-go/troupe/examples/internal/messenger"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/tally"
	"github.com/troupe-go/troupe/examples/jobfeed/internal/api"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/examples/jobfeed/recommendation"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the notification service's name in the app and on
// --services.
const ServiceName = "notification"

// Default digest schedules (see outbox.ParseSpec), in UTC.
const (
	DefaultDaily   = "daily at 08:00"
	DefaultWeekly  = "weekly on monday at 08:00"
	DefaultMonthly = "monthly on 1 at 08:00"
)

// The statuses of a message.
const (
	// StatusDue: decided, not sent yet. Not terminal.
	StatusDue = "due"
	// StatusSent: the messenger took it. Terminal.
	StatusSent = "sent"
	// StatusFailed: the messenger refused it through every attempt; the
	// reason is kept. Terminal.
	StatusFailed = "failed"
)

// MessageDue is published, to the notification service itself, when a
// message has been decided: its handler sends it.
var MessageDue = troupe.NewTopic[MessageDueV1]("message_due", 1)

// MessageDueV1 is the data of a [MessageDue] event, version 1.
type MessageDueV1 struct {
	MessageID   string `json:"message_id"`
	CandidateID string `json:"candidate_id"`
}

// MessageFailed is published when a due message could not be sent through
// every attempt (troupe.OnFailure of the sending): the message is then
// marked failed, with the reason.
var MessageFailed = troupe.NewTopic[MessageFailedV1]("message_failed", 1)

// MessageFailedV1 is the data of a [MessageFailed] event, version 1.
type MessageFailedV1 struct {
	MessageID string `json:"message_id"`
	Reason    string `json:"reason"`
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS notification_waiting (
		candidate_id TEXT NOT NULL,
		job_id TEXT NOT NULL,
		name TEXT NOT NULL,
		email TEXT NOT NULL,
		frequency TEXT NOT NULL,
		job TEXT NOT NULL,
		found_at BIGINT NOT NULL,
		PRIMARY KEY (candidate_id, job_id))`,
	`CREATE INDEX IF NOT EXISTS notification_waiting_by_frequency ON notification_waiting (frequency, found_at)`,
	`CREATE TABLE IF NOT EXISTS notification_messages (
		id TEXT PRIMARY KEY,
		candidate_id TEXT NOT NULL,
		email TEXT NOT NULL,
		kind TEXT NOT NULL,
		period TEXT NOT NULL,
		jobs TEXT NOT NULL,
		subject TEXT NOT NULL,
		text TEXT NOT NULL,
		status TEXT NOT NULL,
		decided_at BIGINT NOT NULL,
		sent_at BIGINT NOT NULL DEFAULT 0,
		messenger_id TEXT NOT NULL DEFAULT '',
		failure TEXT NOT NULL DEFAULT '')`,
	`CREATE INDEX IF NOT EXISTS notification_messages_by_candidate ON notification_messages (candidate_id, decided_at)`,
	`CREATE INDEX IF NOT EXISTS notification_messages_by_status ON notification_messages (status)`,
}

// Digests are the digests' schedules (see outbox.ParseSpec); empty means
// the default ([DefaultDaily], [DefaultWeekly], [DefaultMonthly]).
type Digests struct {
	Daily, Weekly, Monthly string
}

// Config says how the notification service runs. Its fields are read when
// the app starts.
type Config struct {
	// DB is where the service keeps its state, and where the messenger
	// keeps its record: SQLite files in the data directory, or PostgreSQL.
	DB *store.DB
	// Digests are the schedules. Nil means the defaults.
	Digests *Digests
	// Clock times the digests and stamps the messages. Default: the system
	// clock. Tests pass a troupetest.Clock.
	Clock outbox.Clock
	// Log receives one line per message. Default: the app's logger.
	Log *slog.Logger
}

// Register declares the notification service on app, with its database
// and the messenger's, which open at start where the service runs, and its
// digest schedules, which start there too. A digest spec that does not
// parse fails the app's start.
func Register(app *troupe.App, cfg Config) *troupe.Service {
	log := cfg.Log
	if log == nil {
		log = app.Logger()
	}
	clock := cfg.Clock
	if clock == nil {
		clock = systemClock{}
	}
	svc := app.Service(ServiceName).Publishes(MessageDue, MessageFailed)
	ob := store.OutboxWith(app, cfg.DB, ServiceName, outbox.Options{Clock: cfg.Clock}, schema...)
	n := &notifier{log: log, ob: ob, clock: clock, mail: messenger.Declare(app, cfg.DB, ServiceName)}
	svc.HandleFunc("GET /notifications", n.serve)
	svc.HandleFunc("/notifications", httpjson.Fallback("/notifications", "GET"))
	outbox.Subscribe(svc, recommendation.OpenJobsFound, "notify", ob, n.found, troupe.Emits(MessageDue))
	outbox.Subscribe(svc, MessageDue, "send", ob, n.send,
		troupe.OnFailure(MessageFailed, func(ev troupe.Event[MessageDueV1], cause error) MessageFailedV1 {
			reason := "the messenger did not take the message"
			if cause != nil {
				reason = cause.Error()
			}
			return MessageFailedV1{MessageID: ev.Data.MessageID, Reason: reason}
		}))
	outbox.Subscribe(svc, MessageFailed, "mark-failed", ob, n.failed)
	app.OnStart(func(context.Context) error {
		if !app.Runs(ServiceName) {
			return nil
		}
		d := Digests{}
		if cfg.Digests != nil {
			d = *cfg.Digests
		}
		for _, s := range []struct {
			f          portal.Frequency
			spec, dflt string
		}{{portal.Daily, d.Daily, DefaultDaily}, {portal.Weekly, d.Weekly, DefaultWeekly}, {portal.Monthly, d.Monthly, DefaultMonthly}} {
			spec := s.spec
			if spec == "" {
				spec = s.dflt
			}
			// Catching up a whole period: an instance that starts after all
			// were down at 08:00 still sends that day's (week's, month's)
			// digest; the periods table keeps it from going out twice.
			if err := ob.Schedule("digest-"+string(s.f), spec, n.digest(s.f), outbox.ScheduleOptions{CatchUp: 24 * time.Hour}); err != nil {
				return fmt.Errorf("notification: %s digest: %w", s.f, err)
			}
		}
		return nil
	})
	return svc
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

// Message is one message to a candidate.
type Message struct {
	// ID is the message's id, and its idempotency key at the messenger.
	ID          string `json:"id"`
	CandidateID string `json:"candidate_id"`
	Email       string `json:"email"`
	// Kind is "instant", "daily", "weekly" or "monthly".
	Kind portal.Frequency `json:"kind"`
	// Period is the start of the digest's period (RFC 3339); empty for an
	// instant message.
	Period string         `json:"period,omitempty"`
	Jobs   []portal.Match `json:"jobs"`
	Text   string         `json:"text"`
	// Status is "due", "sent" or "failed" (with the reason in Failure).
	Status  string `json:"status"`
	Failure string `json:"failure,omitempty"`
	// SentAt is when the messenger took it; zero while due.
	SentAt time.Time `json:"sent_at"`
	// MessengerID is the messenger's id of the message, once sent.
	MessengerID string `json:"messenger_id,omitempty"`
}

// Sent is the body of GET /notifications: the messages by status, the
// newest of them (every one of a candidate's), the matches waiting for a
// digest, and what the messenger says it sent.
type Sent struct {
	tally.Counts
	Messages []Message `json:"messages"`
	// Waiting counts the matches waiting for a digest, by frequency.
	Waiting map[portal.Frequency]int `json:"waiting"`
	// Messenger is the messenger's own count of what it sent (for
	// everyone): sent_twice counts customers told the same thing twice.
	Messenger messenger.Stats `json:"messenger"`
}

// listLimit bounds the messages GET /notifications lists without a
// candidate.
const listLimit = 1000

type notifier struct {
	log   *slog.Logger
	ob    *outbox.Outbox
	mail  *messenger.Messenger
	clock outbox.Clock
}

func (n *notifier) q(query string) string { return store.Q(n.ob, query) }

// found is the handler of recommendation.OpenJobsFound, run in the inbox's
// transaction: a candidate who wants to hear at once gets a message now;
// the others' matches wait for their digest.
func (n *notifier) found(ctx context.Context, tx *sql.Tx, ev troupe.Event[recommendation.OpenJobsFoundV1]) error {
	e := ev.Data
	now := n.clock.Now().UTC()
	if e.Preferences.Frequency == portal.Instant {
		return n.decide(ctx, tx, "instant-"+ev.ID, e.CandidateID, e.Email, e.Name, portal.Instant, "", e.Jobs, now)
	}
	for _, j := range e.Jobs {
		b, err := json.Marshal(j)
		if err != nil {
			return troupe.Permanent(err)
		}
		if _, err := tx.ExecContext(ctx, n.q(`INSERT INTO notification_waiting (candidate_id, job_id, name, email, frequency, job, found_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
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
		rows, err := tx.QueryContext(ctx, n.q(`SELECT candidate_id, name, email, job FROM notification_waiting
			WHERE frequency = ? AND found_at < ? ORDER BY candidate_id, found_at, job_id`), string(f), tick.Period.UnixMicro())
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
			id := fmt.Sprintf("%s-%s-%s", f, b.id, tick.Period.UTC().Format("20060102T150405Z"))
			if err := n.decide(ctx, tx, id, b.id, b.email, b.name, f, period, b.jobs, now); err != nil {
				return err
			}
			// Exactly the rows read: on PostgreSQL a match stored since
			// then waits for the next period instead of vanishing.
			for _, j := range b.jobs {
				if _, err := tx.ExecContext(ctx, n.q("DELETE FROM notification_waiting WHERE candidate_id = ? AND job_id = ?"), b.id, j.JobID); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// decide records a due message in tx, with the MessageDue event that has
// it sent.
func (n *notifier) decide(ctx context.Context, tx *sql.Tx, id, candidate, email, name string, kind portal.Frequency, period string, jobs []portal.Match, at time.Time) error {
	b, err := json.Marshal(jobs)
	if err != nil {
		return troupe.Permanent(err)
	}
	res, err := tx.ExecContext(ctx, n.q(`INSERT INTO notification_messages (id, candidate_id, email, kind, period, jobs, subject, text, status, decided_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		id, candidate, email, string(kind), period, string(b), subject(kind, period, jobs), compose(name, kind, jobs), StatusDue, at.UnixMicro())
	if err != nil {
		return err
	}
	if k, err := res.RowsAffected(); err != nil || k == 0 {
		return err // decided before
	}
	return outbox.PublishTx(ctx, tx, MessageDue, MessageDueV1{MessageID: id, CandidateID: candidate})
}

// send is the handler of MessageDue: it hands the message to the
// messenger, keyed by the message's id, and marks it sent, in the inbox's
// transaction. A message sent before (a redelivery, or a retry after a
// crash between the messenger and the commit) is not sent again: the
// messenger knows the key.
func (n *notifier) send(ctx context.Context, tx *sql.Tx, ev troupe.Event[MessageDueV1]) error {
	var m Message
	var subj string
	err := tx.QueryRowContext(ctx, n.q(`SELECT candidate_id, email, subject, text, status FROM notification_messages WHERE id = ?`), ev.Data.MessageID).
		Scan(&m.CandidateID, &m.Email, &subj, &m.Text, &m.Status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return troupe.Permanent(fmt.Errorf("notification: no message %s to send", ev.Data.MessageID))
	case err != nil:
		return err
	case m.Status != StatusDue:
		return nil
	}
	sent, fresh, err := n.mail.Send(ctx, ev.Data.MessageID, messenger.Message{To: m.Email, Ref: m.CandidateID, Subject: subj, Channel: "email", Text: m.Text})
	if err != nil {
		return err
	}
	if fresh {
		n.log.Info(fmt.Sprintf("notification: sent %s to %s", subj, m.Email))
	}
	_, err = tx.ExecContext(ctx, n.q("UPDATE notification_messages SET status = ?, sent_at = ?, messenger_id = ? WHERE id = ?"),
		StatusSent, n.clock.Now().UTC().UnixMicro(), sent.ID, ev.Data.MessageID)
	return err
}

// failed is the handler of MessageFailed: the message ends failed, with
// the reason.
func (n *notifier) failed(ctx context.Context, tx *sql.Tx, ev troupe.Event[MessageFailedV1]) error {
	n.log.Warn("notification: message "+ev.Data.MessageID+" could not be sent", "reason", ev.Data.Reason)
	_, err := tx.ExecContext(ctx, n.q("UPDATE notification_messages SET status = ?, failure = ? WHERE id = ? AND status = ?"),
		StatusFailed, ev.Data.Reason, ev.Data.MessageID, StatusDue)
	return err
}

// subject is what a message tells the candidate, for the messenger: two
// messages with one subject to one candidate told them the same thing.
func subject(kind portal.Frequency, period string, jobs []portal.Match) string {
	if kind == portal.Instant {
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.JobID
		}
		return "new jobs " + strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s digest of %s", kind, period)
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

// serve lists the messages and the matches waiting.
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
	db := n.ob.DB()
	out := Sent{Messages: []Message{}, Waiting: map[portal.Frequency]int{portal.Daily: 0, portal.Weekly: 0, portal.Monthly: 0}}
	out.Counts.ByStatus = map[string]int{}
	srows, err := db.QueryContext(ctx, n.q("SELECT status, count(*) FROM notification_messages WHERE ? = '' OR candidate_id = ? GROUP BY status"), id, id)
	if err != nil {
		return out, err
	}
	defer srows.Close()
	for srows.Next() {
		var st string
		var c int
		if err := srows.Scan(&st, &c); err != nil {
			return out, err
		}
		out.Add(st, c, st != StatusDue)
	}
	if err := srows.Err(); err != nil {
		return out, err
	}
	srows.Close()
	// The newest listLimit (all of one candidate's), oldest first.
	rows, err := db.QueryContext(ctx, n.q(`SELECT id, candidate_id, email, kind, period, jobs, text, status, failure, sent_at, messenger_id FROM
		(SELECT * FROM notification_messages WHERE ? = '' OR candidate_id = ? ORDER BY decided_at DESC, id DESC LIMIT ?) newest
		ORDER BY decided_at, id`), id, id, listLimit)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var m Message
		var jobs string
		var at int64
		if err := rows.Scan(&m.ID, &m.CandidateID, &m.Email, &m.Kind, &m.Period, &jobs, &m.Text, &m.Status, &m.Failure, &at, &m.MessengerID); err != nil {
			return out, err
		}
		if err := json.Unmarshal([]byte(jobs), &m.Jobs); err != nil {
			return out, err
		}
		if at != 0 {
			m.SentAt = time.UnixMicro(at).UTC()
		}
		out.Messages = append(out.Messages, m)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	rows.Close()
	wrows, err := db.QueryContext(ctx, n.q("SELECT frequency, count(*) FROM notification_waiting WHERE ? = '' OR candidate_id = ? GROUP BY frequency"), id, id)
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
	if err := wrows.Err(); err != nil {
		return out, err
	}
	out.Messenger, err = n.mail.Stats(ctx)
	return out, err
}
