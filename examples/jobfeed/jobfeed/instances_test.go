package jobfeed_test

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/examples/jobfeed/notification"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

// freeAddr returns a loopback address no one listened on a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Two instances of the notification service share its database and one
// clock: both schedulers wake at every 08:00 and race for the period, and
// each candidate gets one digest a day.
func TestTwoNotificationInstancesSendEachDigestOnce(t *testing.T) {
	var base string
	clock := digestClock{troupetest.NewClock(monday0700), t, 6, &base}
	dir := t.TempDir()
	brokerAddr := freeAddr(t)

	// The first process runs every service on an embedded broker that
	// the second reaches over TCP; the second runs only the notification
	// service, on the same data directory, so the same notification.db.
	first, err := jobfeed.NewApp(troupe.Config{
		DataDir: dir, Broker: "embedded:?listen=" + brokerAddr, HTTPAddr: "127.0.0.1:0", Logger: testLogger(),
	}, &jobfeed.Options{Clock: clock.Clock})
	if err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, first)
	second, err := jobfeed.NewApp(troupe.Config{
		DataDir: dir, Broker: "nats://" + brokerAddr, Services: []string{notification.ServiceName}, HTTPAddr: "off", Logger: testLogger(),
	}, &jobfeed.Options{Clock: clock.Clock})
	if err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, second)
	t.Cleanup(client.CloseIdleConnections)
	base = "http://" + first.HTTPAddr()

	// Both instances' schedulers wait on the clock.
	clock.idle()

	ids := []string{
		register(t, base, "Dan", portal.Daily, goResume),
		register(t, base, "Dora", portal.Daily, goResume),
	}
	const days = 3
	want := make(map[string][]string)
	for day := range days {
		job := postJob(t, base, fmt.Sprintf("Go developer %d", day), "remote", 1, "go")
		waitWaiting(t, base, map[portal.Frequency]int{portal.Daily: len(ids)})
		if day == 0 {
			clock.advance(time.Hour)
		} else {
			clock.advance(24 * time.Hour)
		}
		period := monday0700.Add(time.Hour).AddDate(0, 0, day).Format(time.RFC3339)
		for _, id := range ids {
			want[id] = append(want[id], fmt.Sprintf("daily %s [%s]", period, job))
			if got := messages(t, base, id); !slices.Equal(got, want[id]) {
				t.Errorf("day %d: candidate %s got %q, want %q", day+1, id, got, want[id])
			}
		}
	}
	if all := sent(t, base, ""); all.Count != days*len(ids) {
		t.Errorf("%d messages in all, want %d", all.Count, days*len(ids))
	}

	// Each period was run by one instance, which recorded it: one row per
	// day, plus the Sunday the first instance caught up at start.
	db, err := outbox.OpenSQLite(filepath.Join(dir, notification.ServiceName+".db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT period FROM notification_periods WHERE schedule = 'digest-daily' ORDER BY period")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var periods []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		periods = append(periods, p)
	}
	wantPeriods := []string{"2026-01-04T08:00:00Z", "2026-01-05T08:00:00Z", "2026-01-06T08:00:00Z", "2026-01-07T08:00:00Z"}
	if err := rows.Err(); err != nil || !slices.Equal(periods, wantPeriods) {
		t.Errorf("daily periods recorded: %q (%v), want %q", periods, err, wantPeriods)
	}
}
