// Package messenger plays the mail and SMS provider of the example apps:
// an outside system that sends messages to customers and keeps its own
// record of them, in a database of its own (messenger.db in the data
// directory, or the messenger_ table on PostgreSQL), so that what was sent
// survives the services' crashes and a second message is there to be
// counted.
//
// Like the providers that take an idempotency key, it sends a message once
// per key: a later request with a key it has seen sends nothing and is
// counted as a repeat. A service that keys each message by what it says
// (order id and kind) never tells a customer the same thing twice; one that
// sends a new key each time does, and [Stats] shows it.
package messenger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
)

// ErrNotOpen is returned by a messenger used in a process that does not
// run the service it belongs to, or before the app started.
var ErrNotOpen = errors.New("messenger: not open here: it opens when the app starts, in the process that runs its service")

// Messenger is the simulated provider. Make one with [Declare].
type Messenger struct {
	h *store.Handle
}

// Message is one message the provider sent.
type Message struct {
	ID string `json:"id"`
	// Key is the sender's idempotency key.
	Key string `json:"idempotency_key"`
	// To is the customer. Ref is what the message is about (an order id),
	// and Subject what it says of it ("shipped"): two messages with one
	// (To, Ref, Subject) told the customer the same thing twice.
	To      string    `json:"to"`
	Ref     string    `json:"ref"`
	Subject string    `json:"subject"`
	Channel string    `json:"channel"` // "email", "sms"
	Text    string    `json:"text"`
	SentAt  time.Time `json:"sent_at"`
	// Repeats counts later requests with the same key, which sent nothing.
	Repeats int `json:"repeats"`
}

// Stats sums up what the provider sent.
type Stats struct {
	Messages int `json:"messages"`
	// RepeatedRequests counts requests whose key was seen before: a retry
	// or a redelivery, which sent nothing.
	RepeatedRequests int `json:"repeated_requests"`
	// SentTwice counts (customer, ref, subject) with more than one message:
	// a customer told the same thing twice.
	SentTwice int `json:"sent_twice"`
}

// Declare declares the messenger of service on app: it opens its database
// when the app starts, in the process that runs service (store.Declare,
// file "messenger"), and closes it when the app stops.
func Declare(app *troupe.App, d *store.DB, service string) *Messenger {
	return &Messenger{h: store.Declare(app, d, service, "messenger", schema...)}
}

var schema = []string{`CREATE TABLE IF NOT EXISTS messenger_sent (
	id        TEXT PRIMARY KEY,
	idem_key  TEXT NOT NULL UNIQUE,
	recipient TEXT NOT NULL,
	ref       TEXT NOT NULL,
	subject   TEXT NOT NULL,
	channel   TEXT NOT NULL,
	body      TEXT NOT NULL,
	sent_us   BIGINT NOT NULL,
	repeats   INTEGER NOT NULL DEFAULT 0
)`,
	`CREATE INDEX IF NOT EXISTS messenger_sent_recipient ON messenger_sent (recipient, sent_us)`,
	`CREATE INDEX IF NOT EXISTS messenger_sent_ref ON messenger_sent (ref, sent_us)`,
}

// Send sends msg (To, Ref, Subject, Channel, Text; the rest is filled in)
// once per key: it returns the message as sent and whether this call sent
// it (false: a message with this key went before, and nothing was sent
// now). It fails with the database's error (nothing sent) or [ErrNotOpen].
func (m *Messenger) Send(ctx context.Context, key string, msg Message) (Message, bool, error) {
	if m.h.DB() == nil {
		return Message{}, false, ErrNotOpen
	}
	msg.ID, msg.Key, msg.SentAt, msg.Repeats = "msg_"+newID(), key, time.Now().UTC(), 0
	_, err := m.h.DB().ExecContext(ctx, m.h.Q(`INSERT INTO messenger_sent (id, idem_key, recipient, ref, subject, channel, body, sent_us)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idem_key) DO UPDATE SET repeats = messenger_sent.repeats + 1`),
		msg.ID, key, msg.To, msg.Ref, msg.Subject, msg.Channel, msg.Text, msg.SentAt.UnixMicro())
	if err != nil {
		return Message{}, false, fmt.Errorf("messenger: send %s: %w", key, err)
	}
	got, err := m.list(ctx, `WHERE idem_key = ?`, key)
	if err != nil {
		return Message{}, false, err
	}
	if len(got) != 1 {
		return Message{}, false, fmt.Errorf("messenger: send %s: %d messages under the key", key, len(got))
	}
	return got[0], got[0].ID == msg.ID, nil
}

// To returns the messages sent to a customer, oldest first.
func (m *Messenger) To(ctx context.Context, customer string) ([]Message, error) {
	if m.h.DB() == nil {
		return nil, ErrNotOpen
	}
	return m.list(ctx, `WHERE recipient = ? ORDER BY sent_us, id`, customer)
}

// About returns the messages about ref (an order id), oldest first.
func (m *Messenger) About(ctx context.Context, ref string) ([]Message, error) {
	if m.h.DB() == nil {
		return nil, ErrNotOpen
	}
	return m.list(ctx, `WHERE ref = ? ORDER BY sent_us, id`, ref)
}

func (m *Messenger) list(ctx context.Context, where string, args ...any) ([]Message, error) {
	rows, err := m.h.DB().QueryContext(ctx, m.h.Q(`SELECT id, idem_key, recipient, ref, subject, channel, body, sent_us, repeats
		FROM messenger_sent `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	defer rows.Close()
	out := []Message{}
	for rows.Next() {
		var msg Message
		var at int64
		if err := rows.Scan(&msg.ID, &msg.Key, &msg.To, &msg.Ref, &msg.Subject, &msg.Channel, &msg.Text, &at, &msg.Repeats); err != nil {
			return nil, fmt.Errorf("messenger: %w", err)
		}
		msg.SentAt = time.UnixMicro(at).UTC()
		out = append(out, msg)
	}
	return out, rows.Err()
}

// Stats sums up every message sent.
func (m *Messenger) Stats(ctx context.Context) (Stats, error) {
	if m.h.DB() == nil {
		return Stats{}, ErrNotOpen
	}
	var s Stats
	err := m.h.DB().QueryRowContext(ctx, `SELECT count(*), coalesce(sum(repeats), 0) FROM messenger_sent`).Scan(&s.Messages, &s.RepeatedRequests)
	if err != nil {
		return Stats{}, fmt.Errorf("messenger: stats: %w", err)
	}
	err = m.h.DB().QueryRowContext(ctx, `SELECT count(*) FROM (SELECT recipient, ref, subject FROM messenger_sent
		GROUP BY recipient, ref, subject HAVING count(*) > 1) twice`).Scan(&s.SentTwice)
	if err != nil {
		return Stats{}, fmt.Errorf("messenger: stats: %w", err)
	}
	return s, nil
}

// BySubject counts the messages sent by subject ("shipped": 12), over
// every customer and ref: what a service told its customers, in total.
func (m *Messenger) BySubject(ctx context.Context) (map[string]int, error) {
	if m.h.DB() == nil {
		return nil, ErrNotOpen
	}
	rows, err := m.h.DB().QueryContext(ctx, `SELECT subject, count(*) FROM messenger_sent GROUP BY subject`)
	if err != nil {
		return nil, fmt.Errorf("messenger: by subject: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int)
	for rows.Next() {
		var subject string
		var n int
		if err := rows.Scan(&subject, &n); err != nil {
			return nil, fmt.Errorf("messenger: by subject: %w", err)
		}
		out[subject] = n
	}
	return out, rows.Err()
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
