package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
)

// Spec is a parsed schedule: when its periods begin. Make one with
// [ParseSpec].
type Spec struct {
	text    string
	kind    specKind
	every   time.Duration
	hour    int
	minute  int
	weekday time.Weekday
	day     int
	loc     *time.Location
}

type specKind int

const (
	specEvery specKind = iota + 1
	specDaily
	specWeekly
	specMonthly
)

// ParseSpec parses a schedule written as one of
//
//	every 10m                      (any Go duration of at least 1s)
//	daily at 08:00
//	weekly on monday at 08:00
//	monthly on 1 at 08:00          (days 29 to 31 fire on the last day of shorter months)
//
// each optionally followed by "in <IANA time zone>", such as
// "daily at 08:00 in Europe/Paris". Times of day are in that zone, UTC by
// default; a time of day that a daylight-saving change skips fires an hour
// later that day. "every" periods are aligned on multiples of the duration
// since the zero time, so all instances agree on them. Keywords are case
// insensitive. It fails with an error that shows the accepted forms.
func ParseSpec(s string) (Spec, error) {
	sp := Spec{text: s, loc: time.UTC}
	bad := func(why string) (Spec, error) {
		return Spec{}, fmt.Errorf("outbox: schedule %q: %s; write \"every 10m\", \"daily at 08:00\", \"weekly on monday at 08:00\" or \"monthly on 1 at 08:00\", optionally followed by \"in Europe/Paris\"", s, why)
	}
	f := strings.Fields(s)
	if n := len(f); n >= 2 && strings.EqualFold(f[n-2], "in") {
		loc, err := time.LoadLocation(f[n-1])
		if err != nil {
			return bad(fmt.Sprintf("unknown time zone %q", f[n-1]))
		}
		sp.loc = loc
		f = f[:n-2]
	}
	if len(f) == 0 {
		return bad("empty")
	}
	at := func(words []string) error {
		if len(words) != 2 || !strings.EqualFold(words[0], "at") {
			return fmt.Errorf("expected \"at HH:MM\"")
		}
		hh, mm, ok := strings.Cut(words[1], ":")
		h, err1 := strconv.Atoi(hh)
		m, err2 := strconv.Atoi(mm)
		if !ok || err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 || len(mm) != 2 {
			return fmt.Errorf("time of day %q is not HH:MM", words[1])
		}
		sp.hour, sp.minute = h, m
		return nil
	}
	switch strings.ToLower(f[0]) {
	case "every":
		if len(f) != 2 {
			return bad("expected \"every <duration>\"")
		}
		d, err := time.ParseDuration(f[1])
		if err != nil || d < time.Second {
			return bad(fmt.Sprintf("duration %q is not a Go duration of at least 1s", f[1]))
		}
		sp.kind, sp.every = specEvery, d
	case "daily":
		if err := at(f[1:]); err != nil {
			return bad(err.Error())
		}
		sp.kind = specDaily
	case "weekly":
		if len(f) != 5 || !strings.EqualFold(f[1], "on") {
			return bad("expected \"weekly on <weekday> at HH:MM\"")
		}
		wd, ok := weekdays[strings.ToLower(f[2])]
		if !ok {
			return bad(fmt.Sprintf("%q is not a weekday", f[2]))
		}
		if err := at(f[3:]); err != nil {
			return bad(err.Error())
		}
		sp.kind, sp.weekday = specWeekly, wd
	case "monthly":
		if len(f) != 5 || !strings.EqualFold(f[1], "on") {
			return bad("expected \"monthly on <day 1-31> at HH:MM\"")
		}
		d, err := strconv.Atoi(f[2])
		if err != nil || d < 1 || d > 31 {
			return bad(fmt.Sprintf("%q is not a day of the month (1-31)", f[2]))
		}
		if err := at(f[3:]); err != nil {
			return bad(err.Error())
		}
		sp.kind, sp.day = specMonthly, d
	default:
		return bad(fmt.Sprintf("unknown form %q", f[0]))
	}
	return sp, nil
}

var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// String returns the text the spec was parsed from.
func (s Spec) String() string { return s.text }

// Next returns the start of the first period strictly after t.
func (s Spec) Next(t time.Time) time.Time {
	if s.kind == specEvery {
		return t.Truncate(s.every).Add(s.every)
	}
	l := t.In(s.loc)
	y, m, d := l.Date()
	switch s.kind {
	case specDaily:
		for k := 0; ; k++ {
			if c := time.Date(y, m, d+k, s.hour, s.minute, 0, 0, s.loc); c.After(t) {
				return c
			}
		}
	case specWeekly:
		for k := 0; ; k++ {
			c := time.Date(y, m, d+k, s.hour, s.minute, 0, 0, s.loc)
			if c.Weekday() == s.weekday && c.After(t) {
				return c
			}
		}
	case specMonthly:
		for k := 0; ; k++ {
			first := time.Date(y, m+time.Month(k), 1, 0, 0, 0, 0, s.loc)
			last := first.AddDate(0, 1, -1).Day()
			c := time.Date(first.Year(), first.Month(), min(s.day, last), s.hour, s.minute, 0, 0, s.loc)
			if c.After(t) {
				return c
			}
		}
	}
	panic("outbox: zero Spec: use ParseSpec")
}

// Tick is one period of a schedule, handed to its function.
type Tick struct {
	// Schedule is the schedule's name.
	Schedule string
	// Period is when the period began: the time the spec names (08:00 in
	// the spec's zone), not when the function runs.
	Period time.Time
}

// ScheduleFunc does a schedule's work for one period, in tx: publish with
// [PublishTx] using ctx and tx. ctx carries the app, and publishes get
// ids derived from the schedule and period, so all instances agree on
// them. An error rolls back tx, and the period is tried again after a
// backoff (by this instance or another) until it succeeds or the app
// stops.
type ScheduleFunc func(ctx context.Context, tx *sql.Tx, tick Tick) error

// ScheduleOptions tune one schedule.
type ScheduleOptions struct {
	// CatchUp is how far back a starting instance looks for a period that
	// no instance ran (all were down at 08:00): the latest such period
	// within CatchUp runs at start. Default one hour; negative disables
	// it.
	CatchUp time.Duration
}

type schedule struct {
	name string
	spec Spec
	fn   ScheduleFunc
	opts ScheduleOptions
}

// Schedule registers fn to run once per period of spec (see [ParseSpec]),
// under name, which identifies the schedule in the periods table: keep it
// stable across deployments. However many instances of the app run the
// schedule, each period runs once: the instance that runs it inserts the
// row (name, period) in the same transaction as fn's writes, and the
// others find the row and skip. Periods are timed by Options.Clock.
//
// Call it before the app starts (or after: it then starts at once). It
// fails for a bad spec, an empty name, or a name registered twice.
func (ob *Outbox) Schedule(name, spec string, fn ScheduleFunc, opts ...ScheduleOptions) error {
	sp, err := ParseSpec(spec)
	if err != nil {
		return err
	}
	if name == "" || fn == nil {
		return fmt.Errorf("outbox: schedule %q: name and function are required", name)
	}
	s := &schedule{name: name, spec: sp, fn: fn}
	if len(opts) > 0 {
		s.opts = opts[0]
	}
	if s.opts.CatchUp == 0 {
		s.opts.CatchUp = time.Hour
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for _, o := range ob.schedules {
		if o.name == name {
			return fmt.Errorf("outbox: schedule %q is registered twice: give each schedule its own name", name)
		}
	}
	ob.schedules = append(ob.schedules, s)
	if ob.running {
		ob.done.Go(func() { ob.runSchedule(ob.runCtx, s) })
	}
	return nil
}

// runSchedule runs s's periods as the clock reaches them until ctx ends.
func (ob *Outbox) runSchedule(ctx context.Context, s *schedule) {
	now := ob.clock.Now()
	if s.opts.CatchUp > 0 {
		var missed time.Time
		for p := s.spec.Next(now.Add(-s.opts.CatchUp)); !p.After(now); p = s.spec.Next(p) {
			missed = p
		}
		if !missed.IsZero() && !ob.fire(ctx, s, missed) {
			return
		}
	}
	cursor := now
	for {
		next := s.spec.Next(cursor)
		ch, stop := ob.clock.NewTimer(next.Sub(ob.clock.Now()))
		select {
		case <-ctx.Done():
			stop()
			return
		case <-ch:
		}
		if !ob.fire(ctx, s, next) {
			return
		}
		cursor = next
	}
}

// fire runs one period, retrying until it is recorded (here or by another
// instance); false means ctx ended first.
func (ob *Outbox) fire(ctx context.Context, s *schedule, period time.Time) bool {
	backoff := time.Duration(0)
	for {
		err := ob.fireOnce(ctx, s, period)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		backoff = min(max(2*backoff, minRelayBackoff), maxRelayBackoff)
		ob.log.Warn("outbox: schedule failed; trying the period again", "schedule", s.name,
			"period", period, "retry_in", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return false
		}
	}
}

func (ob *Outbox) fireOnce(ctx context.Context, s *schedule, period time.Time) error {
	key := period.UTC().Format(time.RFC3339)
	tx, err := ob.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "INSERT INTO "+ob.t.periods+" (schedule, period, fired_at) VALUES ("+ob.phs(1, 3)+") ON CONFLICT DO NOTHING",
		s.name, key, ob.clock.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("record period: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // another instance ran this period
	}
	ob.mu.Lock()
	app := ob.app
	ob.mu.Unlock()
	pctx := WithOutbox(troupe.WithIdempotencyKey(app.Context(ctx), "schedule\x00"+s.name+"\x00"+key), ob)
	if err := s.fn(pctx, tx, Tick{Schedule: s.name, Period: period}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	ob.Wake()
	return nil
}
