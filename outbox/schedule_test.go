package outbox_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

// Two instances run one daily schedule on one database with one fake
// clock: each day fires once, and publishes one event.
func TestScheduleFiresOncePerPeriodWithTwoInstances(t *testing.T) {
	eachDB(t, func(t *testing.T, d database) {
		clock := troupetest.NewClock(time.Date(2026, 1, 5, 7, 0, 0, 0, time.UTC)) // a Monday
		rec := troupetest.NewRecorder()
		var (
			mu      sync.Mutex
			periods = map[time.Time]int{}
		)
		var obs []*outbox.Outbox
		for range 2 {
			app := troupe.New(troupetest.Config(t, troupe.Config{Name: "digest", Transport: rec}))
			app.Service("digest").Publishes(noteTopic)
			ob := newOutbox(t, d, outbox.Options{Clock: clock})
			err := ob.Schedule("daily-digest", "daily at 08:00", func(ctx context.Context, tx *sql.Tx, tick outbox.Tick) error {
				mu.Lock()
				periods[tick.Period]++
				mu.Unlock()
				return outbox.PublishTx(ctx, tx, noteTopic, Note{N: tick.Period.Day()})
			})
			if err != nil {
				t.Fatal(err)
			}
			outbox.Attach(app, ob)
			troupetest.Start(t, app)
			obs = append(obs, ob)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		const days = 3
		for day := range days {
			// Both schedulers wait for the next 08:00.
			if err := clock.WaitTimers(ctx, 2); err != nil {
				t.Fatal(err)
			}
			if day == 0 {
				clock.Advance(time.Hour)
			} else {
				clock.Advance(24 * time.Hour)
			}
			// Both have run the period (one ran it, the other found its
			// row) when both wait again.
			if err := clock.WaitTimers(ctx, 2); err != nil {
				t.Fatal(err)
			}
		}
		waitPending(t, obs[0], 0)
		mu.Lock()
		defer mu.Unlock()
		if len(periods) != days {
			t.Errorf("ran %d periods, want %d: %v", len(periods), days, periods)
		}
		for p, n := range periods {
			if n != 1 {
				t.Errorf("period %s ran %d times", p, n)
			}
			if p.Hour() != 8 || p.Minute() != 0 {
				t.Errorf("period %s does not start at 08:00", p)
			}
		}
		_, _, table := obs[0].Tables()
		if n := countRows(t, obs[0].DB(), "SELECT count(*) FROM "+table+" WHERE schedule = 'daily-digest'"); n != days {
			t.Errorf("%d periods recorded, want %d", n, days)
		}
		notes := troupetest.Events(t, rec.Published(), noteTopic)
		if len(notes) != days {
			t.Errorf("published %d digests, want %d", len(notes), days)
		}
	})
}

func TestParseSpec(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct {
		spec  string
		after time.Time
		want  []time.Time // the next periods, in order
	}{
		{"every 10m", utc("2026-01-05T07:03:00Z"), []time.Time{utc("2026-01-05T07:10:00Z"), utc("2026-01-05T07:20:00Z")}},
		{"daily at 08:00", utc("2026-01-05T07:00:00Z"), []time.Time{utc("2026-01-05T08:00:00Z"), utc("2026-01-06T08:00:00Z")}},
		{"daily at 08:00", utc("2026-01-05T08:00:00Z"), []time.Time{utc("2026-01-06T08:00:00Z")}},
		{"WEEKLY on Monday at 08:30", utc("2026-01-05T09:00:00Z"), []time.Time{utc("2026-01-12T08:30:00Z"), utc("2026-01-19T08:30:00Z")}},
		{"monthly on 31 at 08:00", utc("2026-01-31T09:00:00Z"), []time.Time{utc("2026-02-28T08:00:00Z"), utc("2026-03-31T08:00:00Z"), utc("2026-04-30T08:00:00Z")}},
		{"monthly on 1 at 00:00", utc("2026-12-15T00:00:00Z"), []time.Time{utc("2027-01-01T00:00:00Z")}},
		// Paris is UTC+1 in winter and UTC+2 in summer; 2026-03-29 02:30
		// does not exist there (the clocks jump from 02:00 to 03:00).
		{"daily at 08:00 in Europe/Paris", utc("2026-03-28T12:00:00Z"), []time.Time{utc("2026-03-29T06:00:00Z"), utc("2026-03-30T06:00:00Z")}},
		{"daily at 02:30 in Europe/Paris", utc("2026-03-28T12:00:00Z"), []time.Time{utc("2026-03-29T01:30:00Z"), utc("2026-03-30T00:30:00Z")}},
	} {
		sp, err := outbox.ParseSpec(c.spec)
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		at := c.after
		for i, want := range c.want {
			at = sp.Next(at)
			if !at.Equal(want) {
				t.Errorf("%q after %s: period %d is %s, want %s", c.spec, c.after, i+1, at.UTC(), want)
				break
			}
		}
	}
	_ = paris
	for _, bad := range []string{"", "hourly", "daily at 8", "daily at 24:00", "daily at 08:60", "weekly on funday at 08:00",
		"monthly on 32 at 08:00", "every 10", "every 10ms", "daily at 08:00 in Mars/Olympus"} {
		_, err := outbox.ParseSpec(bad)
		if err == nil {
			t.Errorf("%q parsed", bad)
			continue
		}
		if !strings.Contains(err.Error(), "daily at 08:00") {
			t.Errorf("%q: the error does not show the accepted forms: %v", bad, err)
		}
	}
}

// An instance that starts after a period began, within CatchUp, runs the
// period nobody ran; one that starts later finds it done.
func TestScheduleCatchesUpAMissedPeriodOnce(t *testing.T) {
	d := sqliteDB(t)
	clock := troupetest.NewClock(time.Date(2026, 1, 5, 8, 30, 0, 0, time.UTC))
	rec := troupetest.NewRecorder()
	var (
		mu   sync.Mutex
		runs []time.Time
	)
	start := func() *outbox.Outbox {
		app := troupe.New(troupetest.Config(t, troupe.Config{Name: "catchup", Transport: rec}))
		app.Service("digest").Publishes(noteTopic)
		ob := newOutbox(t, d, outbox.Options{Clock: clock})
		err := ob.Schedule("tick", "every 10m", func(ctx context.Context, tx *sql.Tx, tick outbox.Tick) error {
			mu.Lock()
			runs = append(runs, tick.Period)
			mu.Unlock()
			return nil
		}, outbox.ScheduleOptions{CatchUp: 15 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		outbox.Attach(app, ob)
		troupetest.Start(t, app)
		return ob
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start()
	if err := clock.WaitTimers(ctx, 1); err != nil { // caught up, waiting for 08:40
		t.Fatal(err)
	}
	clock.Advance(5 * time.Minute) // 08:35: a second instance starts
	start()
	if err := clock.WaitTimers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Minute) // 08:40
	if err := clock.WaitTimers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []time.Time{
		time.Date(2026, 1, 5, 8, 30, 0, 0, time.UTC), // caught up by the first instance
		time.Date(2026, 1, 5, 8, 40, 0, 0, time.UTC),
	}
	if len(runs) != len(want) || !runs[0].Equal(want[0]) || !runs[1].Equal(want[1]) {
		t.Errorf("ran periods %v, want %v", runs, want)
	}
}
