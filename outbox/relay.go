package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/troupe-go/troupe/transport"
)

// row is one outbox row read by the relay.
type row struct {
	id  int64
	msg *transport.Message
}

// Relay timing that is not worth an option.
const (
	minRelayBackoff = 100 * time.Millisecond
	maxRelayBackoff = 5 * time.Second
	// After a wake that found nothing (the writer had not committed yet),
	// the relay looks again after chaseStart, doubling up to chaseMax.
	chaseStart = time.Millisecond
	chaseMax   = 128 * time.Millisecond
	pruneEvery = 10 * time.Minute
)

// relay publishes committed, due rows until ctx ends.
func (ob *Outbox) relay(ctx context.Context) {
	backoff := time.Duration(0)
	chase := time.Duration(0)
	var lastPrune time.Time
	for ctx.Err() == nil {
		n, full, err := ob.relayOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, minRelayBackoff), maxRelayBackoff)
			level := slog.LevelWarn
			if errors.Is(err, transport.ErrClosed) {
				level = slog.LevelDebug // the app is stopping; so is the relay
			}
			ob.log.Log(ctx, level, "outbox relay: publishing failed; the events stay in the outbox and are tried again",
				"table", ob.t.outbox, "retry_in", backoff, "err", err)
			if !sleep(ctx, backoff) {
				return
			}
			continue
		}
		backoff = 0
		if full {
			continue
		}
		if n > 0 {
			chase = 0
		} else if chase > 0 {
			chase *= 2
			if chase > chaseMax {
				chase = 0
			}
		}
		if time.Since(lastPrune) > pruneEvery {
			lastPrune = time.Now()
			ob.prune(ctx)
		}
		wait := ob.opts.PollInterval
		if chase > 0 {
			wait = chase
		}
		var due <-chan time.Time
		stopDue := func() bool { return false }
		if at, ok := ob.nextDue(ctx); ok {
			due, stopDue = ob.clock.NewTimer(time.UnixMicro(at).Sub(ob.clock.Now()))
		}
		poll := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-ob.wake:
			chase = chaseStart
		case <-due:
		case <-poll.C:
		}
		poll.Stop()
		stopDue()
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// relayOnce publishes one batch of due rows, if this relay may: one relay
// per table publishes at a time. It reports how many it published and
// whether the batch was full (more may be waiting).
func (ob *Outbox) relayOnce(ctx context.Context) (int, bool, error) {
	ob.mu.Lock()
	app := ob.app
	ob.mu.Unlock()
	if app == nil {
		return 0, false, errors.New("outbox: not attached to an app")
	}
	now := ob.clock.Now().UnixMicro()
	if ob.d == Postgres {
		return ob.relayPostgres(ctx, now)
	}
	ok, err := ob.lock.try()
	if err != nil || !ok {
		return 0, false, err
	}
	defer ob.lock.release()
	rows, err := ob.readDue(ctx, ob.db, now)
	if err != nil || len(rows) == 0 {
		return 0, false, err
	}
	published, rejected, err := ob.publish(ctx, rows)
	if err != nil {
		return 0, false, err
	}
	tx, err := ob.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("outbox: delete published: %w", err)
	}
	defer tx.Rollback()
	if err := ob.settle(ctx, tx, published, rejected); err != nil {
		return 0, false, err
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("outbox: delete published: %w", err)
	}
	return len(published), len(rows) == ob.opts.BatchSize, nil
}

// relayPostgres is relayOnce on PostgreSQL: the transaction holds an
// advisory lock that only one relay of the table can have, and the rows
// are deleted in it, so a relay that dies releases both with its
// connection.
func (ob *Outbox) relayPostgres(ctx context.Context, now int64) (int, bool, error) {
	tx, err := ob.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("outbox: relay: %w", err)
	}
	defer tx.Rollback()
	var ok bool
	if err := tx.QueryRowContext(ctx, "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", ob.t.lockKey).Scan(&ok); err != nil {
		return 0, false, fmt.Errorf("outbox: relay lock: %w", err)
	}
	if !ok {
		return 0, false, nil // another relay is publishing
	}
	rows, err := ob.readDue(ctx, tx, now)
	if err != nil || len(rows) == 0 {
		return 0, false, err
	}
	published, rejected, err := ob.publish(ctx, rows)
	if err != nil {
		return 0, false, err
	}
	if err := ob.settle(ctx, tx, published, rejected); err != nil {
		return 0, false, err
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("outbox: delete published: %w", err)
	}
	return len(published), len(rows) == ob.opts.BatchSize, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// readDue reads the next batch of due rows in id order.
func (ob *Outbox) readDue(ctx context.Context, q querier, now int64) ([]row, error) {
	rs, err := q.QueryContext(ctx, "SELECT id, event_id, type, source, event_time, correlation_id, causation_id, traceparent, content_type, extensions, data FROM "+
		ob.t.outbox+" WHERE rejected IS NULL AND due_at <= "+ob.ph(1)+" ORDER BY id LIMIT "+ob.ph(2), now, ob.opts.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("outbox: read events: %w", err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var (
			r   row
			m   transport.Message
			t   int64
			ext sql.NullString
		)
		if err := rs.Scan(&r.id, &m.ID, &m.Type, &m.Source, &t, &m.CorrelationID, &m.CausationID, &m.TraceParent, &m.DataContentType, &ext, &m.Data); err != nil {
			return nil, fmt.Errorf("outbox: read events: %w", err)
		}
		m.Time = time.Unix(0, t).UTC()
		if ext.Valid && ext.String != "" {
			if err := json.Unmarshal([]byte(ext.String), &m.Extensions); err != nil {
				return nil, fmt.Errorf("outbox: extensions of event %s: %w", m.ID, err)
			}
		}
		r.msg = &m
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: read events: %w", err)
	}
	return out, nil
}

// publish sends rows to the broker, in order, in one pipelined publish.
// If the broker refuses some of them for good (too large, malformed), it
// publishes them one by one to find which, and reports those as rejected
// with their reason; any other error leaves every row for a later try.
func (ob *Outbox) publish(ctx context.Context, rows []row) (published []int64, rejected map[int64]string, err error) {
	msgs := make([]*transport.Message, len(rows))
	for i, r := range rows {
		msgs[i] = r.msg
	}
	ctx, cancel := context.WithTimeout(ctx, ob.opts.PublishTimeout)
	defer cancel()
	err = ob.app.PublishMessages(ctx, msgs...)
	if err == nil {
		published = make([]int64, len(rows))
		for i, r := range rows {
			published[i] = r.id
		}
		return published, nil, nil
	}
	if !refused(err) {
		return nil, nil, fmt.Errorf("outbox: publish %d events: %w", len(rows), err)
	}
	rejected = make(map[int64]string)
	for _, r := range rows {
		err := ob.app.PublishMessages(ctx, r.msg)
		switch {
		case err == nil:
			published = append(published, r.id)
		case refused(err):
			rejected[r.id] = err.Error()
			ob.log.Error("outbox relay: the broker refuses an event; it stays in the outbox marked rejected",
				"table", ob.t.outbox, "event", r.msg.ID, "type", r.msg.Type, "err", err)
		default:
			// Publish what went out so far, in order; retry the rest.
			return published, rejected, nil
		}
	}
	return published, rejected, nil
}

func refused(err error) bool {
	return errors.Is(err, transport.ErrTooLarge) || errors.Is(err, transport.ErrMalformed)
}

// settle deletes published rows and marks rejected ones, in tx.
func (ob *Outbox) settle(ctx context.Context, tx *sql.Tx, published []int64, rejected map[int64]string) error {
	for start := 0; start < len(published); start += insertChunk {
		ids := published[start:min(start+insertChunk, len(published))]
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+ob.t.outbox+" WHERE id IN ("+ob.phs(1, len(ids))+")", args...); err != nil {
			return fmt.Errorf("outbox: delete published: %w", err)
		}
	}
	for id, reason := range rejected {
		if _, err := tx.ExecContext(ctx, "UPDATE "+ob.t.outbox+" SET rejected = "+ob.ph(1)+" WHERE id = "+ob.ph(2), reason, id); err != nil {
			return fmt.Errorf("outbox: mark rejected: %w", err)
		}
	}
	return nil
}

// nextDue returns the earliest due time of a delayed row not yet due.
func (ob *Outbox) nextDue(ctx context.Context) (int64, bool) {
	var at sql.NullInt64
	err := ob.db.QueryRowContext(ctx, "SELECT min(due_at) FROM "+ob.t.outbox+" WHERE rejected IS NULL AND due_at > "+ob.ph(1),
		ob.clock.Now().UnixMicro()).Scan(&at)
	if err != nil || !at.Valid {
		return 0, false
	}
	return at.Int64, true
}

// prune forgets inbox records and fired periods older than the
// retention.
func (ob *Outbox) prune(ctx context.Context) {
	cut := ob.clock.Now().Add(-ob.opts.InboxRetention).UnixMicro()
	if _, err := ob.db.ExecContext(ctx, "DELETE FROM "+ob.t.inbox+" WHERE handled_at < "+ob.ph(1), cut); err != nil && ctx.Err() == nil {
		ob.log.Warn("outbox: prune inbox", "table", ob.t.inbox, "err", err)
	}
	if _, err := ob.db.ExecContext(ctx, "DELETE FROM "+ob.t.periods+" WHERE fired_at < "+ob.ph(1), cut); err != nil && ctx.Err() == nil {
		ob.log.Warn("outbox: prune schedule periods", "table", ob.t.periods, "err", err)
	}
}

// listen wakes the relay on every NOTIFY of the outbox's channel, with a
// connection of its own, reconnecting after failures. With a PostgreSQL
// driver other than pgx it returns at once and the relay polls.
func (ob *Outbox) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := ob.listenOnce(ctx)
		if errors.Is(err, errNoListen) {
			ob.log.Info("outbox: the PostgreSQL driver is not pgx; the relay polls instead of listening", "poll", ob.opts.PollInterval)
			return
		}
		if ctx.Err() != nil {
			return
		}
		ob.log.Warn("outbox: LISTEN connection lost; the relay polls until it is back", "err", err)
		if !sleep(ctx, time.Second) {
			return
		}
	}
}

var errNoListen = errors.New("driver cannot listen")

func (ob *Outbox) listenOnce(ctx context.Context) error {
	conn, err := ob.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errNoListen
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{ob.t.channel}.Sanitize()); err != nil {
			return fmt.Errorf("%w: %v", driver.ErrBadConn, err)
		}
		ob.Wake() // rows committed before LISTEN took effect
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				// The connection listens and may hold a half-read
				// message: never give it back to the pool.
				return fmt.Errorf("%w: %v", driver.ErrBadConn, err)
			}
			ob.Wake()
		}
	})
}

// RejectedEvent is an event the broker refused for good (too large for it,
// or malformed), which the relay set aside so that the events behind it go
// on. It stays in the outbox table, with rejected set to Reason, until an
// operator deletes it.
type RejectedEvent struct {
	ID     string // the event id
	Type   string // the wire type
	Reason string // the broker's error
}

// Rejected lists up to limit rejected events (limit <= 0: all), oldest
// first.
func (ob *Outbox) Rejected(ctx context.Context, limit int) ([]RejectedEvent, error) {
	if ob.db == nil {
		return nil, ErrNotOpen
	}
	q := "SELECT event_id, type, rejected FROM " + ob.t.outbox + " WHERE rejected IS NOT NULL ORDER BY id"
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rs, err := ob.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("outbox: rejected events: %w", err)
	}
	defer rs.Close()
	var out []RejectedEvent
	for rs.Next() {
		var r RejectedEvent
		if err := rs.Scan(&r.ID, &r.Type, &r.Reason); err != nil {
			return nil, fmt.Errorf("outbox: rejected events: %w", err)
		}
		out = append(out, r)
	}
	return out, rs.Err()
}
