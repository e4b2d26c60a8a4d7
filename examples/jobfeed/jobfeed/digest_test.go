package jobfeed_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/examples/jobfeed/notification"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/troupetest"
)

// monday0700 is when the digest tests begin: a Monday, an hour before the
// digests' 08:00.
var monday0700 = time.Date(2026, 1, 5, 7, 0, 0, 0, time.UTC)

const goResume = "Go developer, 5 years of Go."

// digestClock drives the notification service's schedules: schedules is
// how many schedulers wait on the clock when all are idle (three per
// instance of the service: daily, weekly, monthly).
type digestClock struct {
	*troupetest.Clock
	t         *testing.T
	schedules int
	base      *string // the app's URL, once it runs
}

// idle waits until every scheduler waits for its next period, that is,
// until the periods already due have run.
func (c digestClock) idle() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), waitTimeout)
	defer cancel()
	if err := c.WaitTimers(ctx, c.schedules); err != nil {
		c.t.Fatalf("the %d schedulers did not all wait on the clock (%d timers): %v", c.schedules, c.Timers(), err)
	}
}

// advance moves the clock by d once the schedulers are idle, and returns
// once the periods it reached have run and their messages are sent (no
// message is due), so that each is stamped with its period's time.
func (c digestClock) advance(d time.Duration) {
	c.t.Helper()
	c.idle()
	c.Advance(d)
	c.idle()
	settled(c.t, *c.base)
}

// settled waits until no message is due: every message decided was sent.
func settled(t *testing.T, base string) {
	t.Helper()
	poll(t, "every due message to be sent", func() notification.Sent { return sent(t, base, "") },
		func(s notification.Sent) bool { return s.Stuck == 0 })
}

// messages returns the kind, period and job ids of each message sent to
// candidate id, as "daily 2026-01-05T08:00:00Z [job-1 job-2]".
func messages(t *testing.T, base, id string) []string {
	t.Helper()
	settled(t, base)
	var out []string
	for _, m := range sent(t, base, id).Messages {
		out = append(out, fmt.Sprintf("%s %s %v", m.Kind, m.Period, jobIDs(m.Jobs)))
	}
	return out
}

func waitWaiting(t *testing.T, base string, want map[portal.Frequency]int) {
	t.Helper()
	poll(t, fmt.Sprintf("matches waiting for a digest: %v", want), func() notification.Sent { return sent(t, base, "") },
		func(s notification.Sent) bool {
			for f, n := range want {
				if s.Waiting[f] != n {
					return false
				}
			}
			return true
		})
}

func waitSent(t *testing.T, base, id string, n int) []string {
	t.Helper()
	poll(t, fmt.Sprintf("%d messages to %s", n, id), func() int { return sent(t, base, id).Count },
		func(c int) bool { return c >= n })
	return messages(t, base, id)
}

// Four candidates with the four frequencies hear about the same jobs: the
// instant one at once, the others in a digest of the matches found since
// their last one, once per day, week or month, and never an empty digest.
// A fake clock moves from Monday 5 January 2026 07:00 to Sunday 1 February
// 08:00, a day at a time.
func TestDigestsFollowEachCandidatesFrequency(t *testing.T) {
	var base string
	clock := digestClock{troupetest.NewClock(monday0700), t, 3, &base}
	_, base = startApp(t, &jobfeed.Options{Clock: clock.Clock}, nil)

	j1 := postJob(t, base, "Go developer", "remote", 2, "go")
	instant := register(t, base, "Ines", portal.Instant, goResume)
	daily := register(t, base, "Dan", portal.Daily, goResume)
	weekly := register(t, base, "Wanda", portal.Weekly, goResume)
	monthly := register(t, base, "Mona", portal.Monthly, goResume)

	if got, want := waitSent(t, base, instant, 1), []string{fmt.Sprintf("instant  [%s]", j1)}; !slices.Equal(got, want) {
		t.Errorf("instant candidate got %q, want %q", got, want)
	}
	waitWaiting(t, base, map[portal.Frequency]int{portal.Daily: 1, portal.Weekly: 1, portal.Monthly: 1})
	for _, id := range []string{daily, weekly, monthly} {
		if got := messages(t, base, id); len(got) != 0 {
			t.Errorf("before 08:00, candidate %s got %q", id, got)
		}
	}

	// Monday 08:00: the daily and the weekly digests.
	clock.advance(time.Hour)
	mon := "2026-01-05T08:00:00Z"
	want := map[string][]string{
		instant: {fmt.Sprintf("instant  [%s]", j1)},
		daily:   {fmt.Sprintf("daily %s [%s]", mon, j1)},
		weekly:  {fmt.Sprintf("weekly %s [%s]", mon, j1)},
		monthly: nil,
	}
	check := func(when string) {
		t.Helper()
		for id, w := range want {
			if got := messages(t, base, id); !slices.Equal(got, w) {
				t.Errorf("%s, candidate %s got %q, want %q", when, id, got, w)
			}
		}
	}
	check("on Monday at 08:00")
	waitWaiting(t, base, map[portal.Frequency]int{portal.Daily: 0, portal.Weekly: 0, portal.Monthly: 1})

	// A second job on Monday after the digests: instant at once, the
	// others wait.
	j2 := postJob(t, base, "Go engineer", "remote", 3, "go")
	want[instant] = append(want[instant], fmt.Sprintf("instant  [%s]", j2))
	waitSent(t, base, instant, 2)
	waitWaiting(t, base, map[portal.Frequency]int{portal.Daily: 1, portal.Weekly: 1, portal.Monthly: 2})

	// Tuesday 08:00: the daily digest has only the job of that day.
	clock.advance(24 * time.Hour)
	want[daily] = append(want[daily], fmt.Sprintf("daily 2026-01-06T08:00:00Z [%s]", j2))
	check("on Tuesday at 08:00")

	// Through to Monday 12 January 08:00: no empty daily digest; the
	// weekly one brings the second job.
	for range 6 {
		clock.advance(24 * time.Hour)
	}
	want[weekly] = append(want[weekly], fmt.Sprintf("weekly 2026-01-12T08:00:00Z [%s]", j2))
	check("on Monday 12 January at 08:00")

	// Through to Sunday 1 February 08:00: the monthly digest, with both
	// jobs, once.
	for range 20 {
		clock.advance(24 * time.Hour)
	}
	want[monthly] = []string{fmt.Sprintf("monthly 2026-02-01T08:00:00Z [%s %s]", j1, j2)}
	check("on 1 February at 08:00")
	waitWaiting(t, base, map[portal.Frequency]int{portal.Daily: 0, portal.Weekly: 0, portal.Monthly: 0})

	all := sent(t, base, "")
	if all.Count != 7 {
		t.Errorf("%d messages in all, want 7: %+v", all.Count, all.Messages)
	}
	for _, m := range all.Messages {
		if m.Kind != portal.Instant && (m.Period == "" || !m.SentAt.Equal(mustParse(t, m.Period))) {
			t.Errorf("digest %s for period %q was sent at %s, want at the period's start on the fake clock", m.ID, m.Period, m.SentAt)
		}
		if m.Email == "" || m.Text == "" {
			t.Errorf("message %s lacks an address or a text: %+v", m.ID, m)
		}
		if m.Status != notification.StatusSent || m.MessengerID == "" {
			t.Errorf("message %s is %s (messenger id %q), want sent by the messenger", m.ID, m.Status, m.MessengerID)
		}
	}
	if all.Messenger.Messages != 7 || all.Messenger.SentTwice != 0 {
		t.Errorf("the messenger counts %+v, want 7 messages, none twice", all.Messenger)
	}
}

func mustParse(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
