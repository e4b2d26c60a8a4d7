// Package journal keeps a compact record of everything an app publishes and
// of every attempt at handling an event, on the broker, so that the whole
// path of one business transaction can be read back from any process:
// which service published what, which subscription handled it, on which
// attempt, whether it was retried, dead-lettered or compensated, with the
// error and how long each step took.
//
// Install it once per app, before Start:
//
//	app := troupe.New(troupe.Config{Name: "shop"})
//	journal.Install(app) // keeps 24 hours, at most 256 MiB
//
// then read a transaction back with [Trace], or watch entries arrive with
// [Tail]; the ops package's "trace" command prints a trace as a tree.
//
// # Where it is kept
//
// On NATS (embedded or external) the journal is a stream of its own,
// TROUPE_<app>_JOURNAL, with one subject per correlation id; on RabbitMQ a
// stream queue, "<app>.journal". Both are trimmed by age ([MaxAge]) and
// size ([MaxBytes]). Other transports have no journal: Start then fails.
//
// # Cost
//
// The middleware hands each entry to a buffered queue and returns; one
// goroutine writes the queued entries in batches, gathered for up to
// [FlushDelay], which the transports store several to a broker message. A full queue drops
// entries rather than slowing the app, and a write the broker refuses is
// counted and logged: the journal never fails or delays a publish or a
// handler beyond building its entries. [Writer.Stats] counts both.
package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// Defaults of the options.
const (
	DefaultMaxAge     = 24 * time.Hour
	DefaultMaxBytes   = 256 << 20
	DefaultBuffer     = 8192
	DefaultErrorLimit = 512
	DefaultFlushDelay = 50 * time.Millisecond
)

// maxBatch bounds the entries of one write to the broker.
const maxBatch = 512

// writeTimeout bounds one write to the broker.
const writeTimeout = 10 * time.Second

// ErrUnsupported is returned when the app's transport keeps no journal.
var ErrUnsupported = errors.New("journal: this transport keeps no journal (use embedded:, nats:// or amqp://)")

// ErrNotFound is returned by [Trace] for a correlation id without entries.
var ErrNotFound = errors.New("journal: no entries")

// Option tunes [Install]. Each documents its default.
type Option func(*config)

type config struct {
	maxAge     time.Duration
	maxBytes   int64
	buffer     int
	errorLimit int
	flushDelay time.Duration
}

// MaxAge sets how long entries are kept. Default [DefaultMaxAge] (24h).
// Values below one second are raised to one second.
func MaxAge(d time.Duration) Option { return func(c *config) { c.maxAge = max(d, time.Second) } }

// MaxBytes caps the journal's size on the broker; the oldest entries go
// first. Default [DefaultMaxBytes] (256 MiB); 0 or less means no cap
// beyond MaxAge. RabbitMQ trims in segments of a sixteenth of the cap, so
// it may hold a little more.
func MaxBytes(n int64) Option { return func(c *config) { c.maxBytes = max(n, 0) } }

// Buffer sets how many entries may wait to be written; beyond it, new
// entries are dropped and counted in [Stats].Dropped. Default
// [DefaultBuffer] (8192).
func Buffer(n int) Option { return func(c *config) { c.buffer = max(n, 1) } }

// ErrorLimit sets the most bytes of an error's text an entry keeps.
// Default [DefaultErrorLimit] (512).
func ErrorLimit(n int) Option { return func(c *config) { c.errorLimit = max(n, 16) } }

// FlushDelay sets how long the writer waits, after an entry arrives, for
// more to write with it: longer means fewer, larger writes, and entries
// that show up in [Trace] that much later. Default [DefaultFlushDelay]
// (50ms); 0 writes at once whatever is queued.
func FlushDelay(d time.Duration) Option { return func(c *config) { c.flushDelay = max(d, 0) } }

// Stats counts what a [Writer] did with the entries it was given.
type Stats struct {
	// Written entries were confirmed by the broker.
	Written uint64
	// Dropped entries found the buffer full, or the writer stopped.
	Dropped uint64
	// Failed entries were refused by the broker or not confirmed in time.
	Failed uint64
}

// Writer writes an app's journal entries; [Install] returns it.
type Writer struct {
	app *troupe.App
	cfg config
	in  chan Entry

	startOnce sync.Once
	quit      chan struct{}
	done      chan struct{}
	started   atomic.Bool

	written, dropped, failed atomic.Uint64
	lastWarn                 atomic.Int64 // unix nanos of the last logged write failure
}

// Install adds the journal to app: a middleware that records every publish
// and every handling attempt, and a writer that the app starts and stops
// with itself (OnStart creates or checks the journal on the broker with the
// options' limits, and fails Start with [ErrUnsupported] on a transport
// without a journal; OnStop writes what is queued, within the shutdown
// timeout). Call it before Start, once. An app started with
// StartClient runs no OnStart, so it reads the journal but writes none.
func Install(app *troupe.App, opts ...Option) *Writer {
	cfg := config{maxAge: DefaultMaxAge, maxBytes: DefaultMaxBytes, buffer: DefaultBuffer, errorLimit: DefaultErrorLimit, flushDelay: DefaultFlushDelay}
	for _, o := range opts {
		o(&cfg)
	}
	w := &Writer{app: app, cfg: cfg, in: make(chan Entry, cfg.buffer), quit: make(chan struct{}), done: make(chan struct{})}
	app.Use(troupe.Middleware{Name: "journal", Publish: w.publish, Settled: w.settled})
	app.OnStart(func(ctx context.Context) error {
		j, err := journaler(app)
		if err != nil {
			return err
		}
		if err := j.DeclareJournal(ctx, transport.JournalConfig{MaxAge: cfg.maxAge, MaxBytes: cfg.maxBytes}); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		w.startOnce.Do(func() {
			w.started.Store(true)
			go w.run(j)
		})
		return nil
	})
	app.OnStop(func(ctx context.Context) error {
		if !w.started.Load() {
			return nil
		}
		select {
		case <-w.quit:
		default:
			close(w.quit)
		}
		select {
		case <-w.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("journal: writing the last entries: %w", ctx.Err())
		}
	})
	return w
}

// Stats returns the writer's counts so far.
func (w *Writer) Stats() Stats {
	return Stats{Written: w.written.Load(), Dropped: w.dropped.Load(), Failed: w.failed.Load()}
}

func journaler(app *troupe.App) (transport.Journaler, error) {
	tr := app.Transport()
	if tr == nil {
		return nil, troupe.ErrNotStarted
	}
	j, ok := tr.(transport.Journaler)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnsupported, tr)
	}
	return j, nil
}

// add queues e without ever blocking.
func (w *Writer) add(e Entry) {
	select {
	case <-w.quit:
		w.dropped.Add(1)
		return
	default:
	}
	select {
	case w.in <- e:
	default:
		w.dropped.Add(1)
	}
}

// run writes queued entries in batches until quit, then what is left.
func (w *Writer) run(j transport.Journaler) {
	defer close(w.done)
	batch := make([]transport.JournalRecord, 0, maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		stopping := false
		select {
		case e := <-w.in:
			batch = append(batch, w.record(e))
		case <-w.quit:
			stopping = true
		}
		// Wait a moment for more, so that a transaction's entries share a
		// write and, where the transport packs them, a message.
		if !stopping && w.cfg.flushDelay > 0 {
			timer.Reset(w.cfg.flushDelay)
		linger:
			for len(batch) < maxBatch {
				select {
				case e := <-w.in:
					batch = append(batch, w.record(e))
				case <-timer.C:
					break linger
				case <-w.quit:
					stopping = true
					break linger
				}
			}
			timer.Stop()
		}
	more:
		for len(batch) < maxBatch {
			select {
			case e := <-w.in:
				batch = append(batch, w.record(e))
			default:
				break more
			}
		}
		if len(batch) > 0 {
			w.write(j, batch)
			batch = batch[:0]
		}
		if stopping && len(w.in) == 0 {
			return
		}
	}
}

func (w *Writer) record(e Entry) transport.JournalRecord {
	data, _ := json.Marshal(e) // an Entry always encodes
	return transport.JournalRecord{Correlation: e.CorrelationID, Data: data}
}

func (w *Writer) write(j transport.Journaler, batch []transport.JournalRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := j.AppendJournal(ctx, batch...); err != nil {
		w.failed.Add(uint64(len(batch)))
		// One warning per 30 seconds: a broker refusing the journal would
		// otherwise flood the log at the app's event rate.
		now, last := time.Now().UnixNano(), w.lastWarn.Load()
		if now-last >= int64(30*time.Second) && w.lastWarn.CompareAndSwap(last, now) {
			w.app.Logger().Warn("journal: entries not written (counted in journal Stats().Failed; the app goes on)",
				"entries", len(batch), "failed_so_far", w.failed.Load(), "err", err)
		}
		return
	}
	w.written.Add(uint64(len(batch)))
}

// settled records every attempt at handling an event of sub, with the
// outcome troupe decided.
func (w *Writer) settled(sub *troupe.Subscription) troupe.SettledFunc {
	name, service := sub.String(), sub.Service().Name()
	return func(_ context.Context, s troupe.Settlement) {
		d := s.Delivery
		e := Entry{
			Kind: KindHandle, Time: s.Began.UTC(), Duration: s.Took, Outcome: Outcome(s.Outcome),
			CorrelationID: d.CorrelationID, EventID: d.ID, CausationID: d.CausationID, Type: d.Type,
			Service: service, Subscription: name, Attempt: d.Attempt, Replays: d.Replays,
		}
		if s.Err != nil {
			e.Error = w.cut(s.Err.Error())
		}
		w.add(e)
	}
}

func (w *Writer) publish(next troupe.PublishFunc) troupe.PublishFunc {
	return func(ctx context.Context, msgs []*transport.Message) error {
		start := time.Now()
		err := next(ctx, msgs)
		took := time.Since(start)
		h, inHandler := troupe.HandlingOf(ctx)
		for _, m := range msgs {
			e := Entry{
				Kind: KindPublish, Time: start.UTC(), Duration: took, Outcome: Published,
				CorrelationID: m.CorrelationID, EventID: m.ID, CausationID: m.CausationID, Type: m.Type,
				Service: serviceOf(m.Source),
			}
			if inHandler {
				e.Subscription, e.Attempt, e.Replays = h.Event.Subscription, h.Event.Attempt, h.Event.Replays
			}
			if err != nil {
				e.Outcome, e.Error = Failed, w.cut(err.Error())
			}
			w.add(e)
		}
		return err
	}
}

// serviceOf reads the service from a troupe ce-source, "/<app>/<service>".
func serviceOf(source string) string {
	_, svc, _ := transport.ParseSource(source)
	return svc
}

// cut shortens s to the error limit, on a character boundary.
func (w *Writer) cut(s string) string {
	if len(s) <= w.cfg.errorLimit {
		return s
	}
	n := w.cfg.errorLimit - len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
