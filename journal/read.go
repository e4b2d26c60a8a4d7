package journal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// Trace returns the journal's entries of one business transaction in
// causal order: each event's publish, then the attempts at handling it
// (by subscription, in time order), each attempt followed by what its
// handler published, depth first, with [Entry.Depth] set. Entries whose
// cause is not in the journal (expired, or written by an app without the
// journal) start trees of their own, in time order.
//
// app must be started (Start or StartClient); the app need not have the
// journal installed to read it. Trace fails with troupe.ErrNotStarted,
// [ErrUnsupported], an error wrapping [ErrNotFound] for a correlation id
// without entries, one wrapping transport.ErrNoJournal when no process of
// the app ever wrote a journal, or the broker's error. Entries are written
// asynchronously, so the last steps of a transaction may show up a moment
// after they ran.
func Trace(ctx context.Context, app *troupe.App, correlationID string) ([]Entry, error) {
	if correlationID == "" {
		return nil, errors.New("journal: trace: no correlation id given")
	}
	j, err := journaler(app)
	if err != nil {
		return nil, err
	}
	var entries []Entry
	err = j.ReadJournal(ctx, correlationID, sinceHint(correlationID, time.Now()), func(r transport.JournalRecord) error {
		if e, err := decodeEntry(r.Data); err == nil && e.CorrelationID == correlationID {
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, readErr(app, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w for correlation id %q: check the id, or it is older than the journal keeps", ErrNotFound, correlationID)
	}
	return order(entries), nil
}

// hintMargin is how far behind the broker's clock the clock of the host
// that minted a correlation id may run without Trace missing entries.
const hintMargin = 10 * time.Minute

// sinceHint returns when the transaction of correlationID began at the
// earliest, when the id says so: ids troupe mints at the edge are UUIDv7,
// whose first 48 bits are the Unix time in milliseconds. Transports that
// cannot index by correlation (RabbitMQ) then read the journal from there
// rather than from its start. Other ids, and ids from the future, give
// the zero time: read everything.
func sinceHint(correlationID string, now time.Time) time.Time {
	u, err := uuid.Parse(correlationID)
	if err != nil || u.Version() != 7 {
		return time.Time{}
	}
	sec, nsec := u.Time().UnixTime()
	t := time.Unix(sec, nsec)
	if t.After(now.Add(hintMargin)) {
		return time.Time{}
	}
	return t.Add(-hintMargin)
}

func readErr(app *troupe.App, err error) error {
	if errors.Is(err, transport.ErrNoJournal) {
		return fmt.Errorf("journal: app %s has no journal on this broker (%w): add journal.Install(app) to the app and run it", app.Name(), err)
	}
	return fmt.Errorf("journal: %w", err)
}

// order sorts entries into the causal tree's depth-first order and sets
// their depth.
func order(es []Entry) []Entry {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Time.Before(es[j].Time) })
	type attemptKey struct {
		event, sub       string
		attempt, replays int
	}
	firstPub := make(map[string]int)    // event id → its earliest publish entry
	handles := make(map[attemptKey]int) // one attempt → its entry
	handlesOf := make(map[string][]int) // event id → its handling entries
	for i, e := range es {
		if e.IsPublish() {
			if _, ok := firstPub[e.EventID]; !ok {
				firstPub[e.EventID] = i
			}
			continue
		}
		handles[attemptKey{e.EventID, e.Subscription, e.Attempt, e.Replays}] = i
		handlesOf[e.EventID] = append(handlesOf[e.EventID], i)
	}
	children := make([][]int, len(es))
	var roots []int
	for i, e := range es {
		parent := -1
		if e.IsPublish() {
			if e.CausationID != "" {
				if h, ok := handles[attemptKey{e.CausationID, e.Subscription, e.Attempt, e.Replays}]; ok {
					parent = h
				} else if hs := handlesOf[e.CausationID]; len(hs) > 0 {
					parent = hs[0]
				} else if p, ok := firstPub[e.CausationID]; ok {
					parent = p
				}
			}
		} else if p, ok := firstPub[e.EventID]; ok {
			parent = p
		}
		if parent < 0 || parent == i {
			roots = append(roots, i)
			continue
		}
		children[parent] = append(children[parent], i)
	}
	out := make([]Entry, 0, len(es))
	seen := make([]bool, len(es))
	var walk func(i, depth int)
	walk = func(i, depth int) {
		if seen[i] {
			return
		}
		seen[i] = true
		e := es[i]
		e.Depth = depth
		out = append(out, e)
		for _, c := range children[i] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	for i := range es { // only a cycle of ids leaves entries unseen
		walk(i, 0)
	}
	return out
}

// Filter selects the entries [Tail] passes on. Empty fields select all.
type Filter struct {
	// CorrelationID keeps one business transaction's entries.
	CorrelationID string
	// Topic keeps entries of one topic (any version), by name.
	Topic string
	// Service keeps entries published or handled by one service.
	Service string
	// Subscription keeps the handlings of one "service.name", and what
	// its handler published.
	Subscription string
	// Outcomes keeps entries with one of these outcomes.
	Outcomes []Outcome
	// Since starts with the entries of this time; zero starts with those
	// written after Tail began.
	Since time.Time
}

// Match reports whether e passes f.
func (f Filter) Match(e Entry) bool {
	switch {
	case f.CorrelationID != "" && e.CorrelationID != f.CorrelationID,
		f.Service != "" && e.Service != f.Service,
		f.Subscription != "" && e.Subscription != f.Subscription,
		len(f.Outcomes) > 0 && !slices.Contains(f.Outcomes, e.Outcome),
		!f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	}
	if f.Topic != "" {
		name, _, err := transport.ParseType(e.Type)
		return err == nil && name == f.Topic
	}
	return true
}

// Tail calls fn with each journal entry that f matches, as the app's
// processes write them, until ctx ends; it then returns nil. fn runs on one
// goroutine, in the order the broker stored the entries, and should not
// block for long. Tail fails at once as [Trace] does (troupe.ErrNotStarted,
// [ErrUnsupported], transport.ErrNoJournal), and returns an error if the
// broker connection is lost while it follows (on RabbitMQ; NATS follows
// through reconnects): call it again with Since set to the last entry's
// time to go on.
func Tail(ctx context.Context, app *troupe.App, f Filter, fn func(Entry)) error {
	j, err := journaler(app)
	if err != nil {
		return err
	}
	tp, err := j.FollowJournal(ctx, f.CorrelationID, f.Since, func(r transport.JournalRecord) {
		if e, err := decodeEntry(r.Data); err == nil && f.Match(e) {
			fn(e)
		}
	})
	if err != nil {
		return readErr(app, err)
	}
	select {
	case <-ctx.Done():
		_ = tp.Close()
		<-tp.Done()
		return nil
	case <-tp.Done():
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("journal: tail: the broker connection was lost; tail again with Filter.Since to go on")
	}
}
