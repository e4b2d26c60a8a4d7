package jobfeed_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/examples/jobfeed/notification"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
)

// On SQLite and on PostgreSQL (--db), a candidate is profiled, matched and
// told; after a restart on the same data directory and database the portal
// answers exactly as before, and the flow goes on.
func TestStateSurvivesARestart(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "jobfeed_store_" + hex.EncodeToString(b)
	storetest.Each(t, name, func(t *testing.T, db *store.DB) {
		dir := t.TempDir()
		run := func() (string, func()) {
			t.Helper()
			app, err := jobfeed.NewApp(troupe.Config{Name: name, DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: testLogger()},
				&jobfeed.Options{DB: *db})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			return "http://" + app.HTTPAddr(), func() {
				client.CloseIdleConnections()
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				if err := app.Stop(ctx); err != nil {
					t.Errorf("stop: %v", err)
				}
			}
		}
		base, stop := run()
		postJob(t, base, "Backend engineer", "remote", 2, "go", "postgresql")
		id := register(t, base, "Ada", portal.Instant, "4 years of Go and Postgres")
		before := waitMatches(t, base, id, 1)
		sentBefore := waitSentTo(t, base, id, 1)
		var jobsBefore portal.JobList
		getJSON(t, base+"/jobs", &jobsBefore)
		stop()

		base, stop = run()
		defer stop()
		if a, b := mustJSON(t, candidate(t, base, id)), mustJSON(t, before); a != b {
			t.Errorf("after a restart the candidate reads\n%s\nwant, as before,\n%s", a, b)
		}
		if a, b := mustJSON(t, sent(t, base, id).Messages), mustJSON(t, sentBefore.Messages); a != b {
			t.Errorf("after a restart the messages read\n%s\nwant, as before,\n%s", a, b)
		}
		var jobsAfter portal.JobList
		getJSON(t, base+"/jobs", &jobsAfter)
		if a, b := mustJSON(t, jobsAfter), mustJSON(t, jobsBefore); a != b {
			t.Errorf("after a restart the jobs read\n%s\nwant, as before,\n%s", a, b)
		}
		postJob(t, base, "Go developer", "remote", 1, "go")
		waitMatches(t, base, id, 2)
		if s := waitSentTo(t, base, id, 2); s.Count != 2 || s.Messenger.SentTwice != 0 {
			t.Errorf("after a second job Ada has %d messages (%+v), want 2", s.Count, s.Messenger)
		}
	})
}

// waitSentTo waits until n messages to candidate id are decided and
// none of them is due any more.
func waitSentTo(t *testing.T, base, id string, n int) notification.Sent {
	t.Helper()
	return poll(t, fmt.Sprintf("%d messages sent to %s", n, id), func() notification.Sent { return sent(t, base, id) },
		func(s notification.Sent) bool { return s.Count >= n && s.Stuck == 0 })
}
