package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Journaler is implemented by transports that can keep a journal for the
// namespace: a log of small records, each filed under the correlation id of
// a business transaction, kept on the broker for a bounded time and size so
// that every process of the app writes to it and any process reads it back.
// The journal package writes its records through it; the records are opaque
// here.
type Journaler interface {
	// DeclareJournal creates the namespace's journal with cfg's limits, or
	// checks or updates an existing one. A transport that cannot change the
	// limits of an existing journal says so in its error.
	DeclareJournal(ctx context.Context, cfg JournalConfig) error

	// AppendJournal stores recs, in order, and returns once the broker
	// confirmed all of them. It fails with an error wrapping [ErrNoJournal]
	// when the journal does not exist (was never declared, or was deleted).
	AppendJournal(ctx context.Context, recs ...JournalRecord) error

	// ReadJournal calls fn with each record of one correlation id that was
	// stored when ReadJournal began, oldest first, and returns once it has
	// seen them all, or with fn's first error. A non-zero since says that
	// no record of the correlation id was stored before it, which lets a
	// transport that cannot index by correlation skip the older part of
	// the journal. It fails with an error wrapping [ErrNoJournal] when the
	// journal does not exist.
	ReadJournal(ctx context.Context, correlation string, since time.Time, fn func(JournalRecord) error) error

	// FollowJournal calls fn for each record stored from since on (the zero
	// time: from the moment FollowJournal returns), for one correlation id
	// or, with "", for all, until ctx ends or the returned tap is closed. fn
	// runs on one goroutine, in storage order. Records stored a little
	// before since may be passed too: compare times when that matters.
	FollowJournal(ctx context.Context, correlation string, since time.Time, fn func(JournalRecord)) (Tap, error)
}

// JournalConfig bounds a journal.
type JournalConfig struct {
	// MaxAge is how long a record is kept at least. Required (> 0).
	MaxAge time.Duration
	// MaxBytes caps the journal's size; the oldest records go first. 0
	// means no cap beyond MaxAge.
	MaxBytes int64
}

// JournalRecord is one record of a journal.
type JournalRecord struct {
	// Correlation is the correlation id the record is filed under.
	Correlation string
	// Data is the record, encoded by whoever wrote it.
	Data []byte
	// Stored is when the broker stored the record; set on read, ignored on
	// append.
	Stored time.Time
}

// ErrNoJournal marks a journal that does not exist on the broker.
var ErrNoJournal = errors.New("no journal")

// PackJournal encodes records into one message body, so that a transport
// can store many records in one broker message: for each record, its
// correlation id and its data, each preceded by its length as a uvarint.
func PackJournal(recs []JournalRecord) []byte {
	n := 0
	for _, r := range recs {
		n += 2*binary.MaxVarintLen32 + len(r.Correlation) + len(r.Data)
	}
	b := make([]byte, 0, n)
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(len(r.Correlation)))
		b = append(b, r.Correlation...)
		b = binary.AppendUvarint(b, uint64(len(r.Data)))
		b = append(b, r.Data...)
	}
	return b
}

// UnpackJournal calls fn for each record of a body [PackJournal] made, in
// order, with stored as each record's Stored time, and stops at fn's first
// error. A body it cannot read fails with an error wrapping
// [ErrMalformed], after the records before the damage.
func UnpackJournal(body []byte, stored time.Time, fn func(JournalRecord) error) error {
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(body)
		if k <= 0 || n > uint64(len(body)-k) {
			return nil, false
		}
		v := body[k : k+int(n)]
		body = body[k+int(n):]
		return v, true
	}
	for len(body) > 0 {
		c, ok := next()
		if !ok {
			return fmt.Errorf("%w: journal record: bad correlation length", ErrMalformed)
		}
		d, ok := next()
		if !ok {
			return fmt.Errorf("%w: journal record: bad data length", ErrMalformed)
		}
		if err := fn(JournalRecord{Correlation: string(c), Data: d, Stored: stored}); err != nil {
			return err
		}
	}
	return nil
}
