package jobfeed_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
)

// runApp starts the job feed on data directory dir and returns its base URL
// and a function that stops it.
func runApp(t *testing.T, dir string) (string, func()) {
	t.Helper()
	app, err := jobfeed.NewApp(troupe.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: testLogger()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := app.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	t.Cleanup(stop)
	return "http://" + app.HTTPAddr(), stop
}

func viewStats(t *testing.T, base string) portal.ViewStats {
	t.Helper()
	var idx portal.Index
	getJSON(t, base+"/", &idx)
	return idx.View
}

// The portal's read model holds only what events said. Deleted while the
// app is stopped, it is rebuilt at the next start from the broker's
// history, and then follows new events as before.
func TestReadModelIsRebuiltFromHistory(t *testing.T) {
	dir := t.TempDir()
	base, stop := runApp(t, dir)
	postJob(t, base, "Backend engineer", "remote", 2, "go", "postgresql")
	postJob(t, base, "Go developer", "Berlin", 1, "go")
	id := register(t, base, "Ada", portal.Instant, "4 years of Go and Postgres", "Berlin")
	before := waitMatches(t, base, id, 2)
	first := poll(t, "both jobs matched in the read model", func() portal.ViewStats { return viewStats(t, base) },
		func(st portal.ViewStats) bool { return st.Jobs == 2 })
	if first.Profiles != 1 || first.Matches != 2 || first.Jobs != 2 || first.BuiltAt == "" {
		t.Fatalf("read model after the flow: %+v", first)
	}
	stop()

	// A restart keeps the read model: nothing is rebuilt.
	base, stop = runApp(t, dir)
	kept := viewStats(t, base)
	if kept != first {
		t.Errorf("after a restart the read model is %+v, want it kept as %+v", kept, first)
	}
	stop()

	// Delete it, and start again.
	file := portal.ViewFile + ".db"
	for _, f := range []string{file, file + "-wal", file + "-shm"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, file)); !os.IsNotExist(err) {
		t.Fatalf("the read model is still there: %v", err)
	}
	base, _ = runApp(t, dir)
	rebuilt := viewStats(t, base)
	if rebuilt.RebuiltEvents < first.EventsApplied || rebuilt.EventsApplied != first.EventsApplied ||
		rebuilt.Profiles != 1 || rebuilt.Matches != 2 || rebuilt.BuiltAt == "" {
		t.Errorf("the rebuilt read model is %+v; want the %d events of %+v replayed", rebuilt, first.EventsApplied, first)
	}
	after := candidate(t, base, id)
	if a, b := mustJSON(t, after), mustJSON(t, before); a != b {
		t.Errorf("after the rebuild the candidate reads\n%s\nwant, as before,\n%s", a, b)
	}

	// The live subscriptions go on where they were.
	later := postJob(t, base, "Postgres engineer", "Berlin", 3, "postgresql", "go")
	c := waitMatches(t, base, id, 3)
	if c.Matches[2].JobID != later {
		t.Errorf("the new match is %+v, want job %s", c.Matches[2], later)
	}
	// Two events: job_matched, and open_jobs_found for Ada.
	st := poll(t, "job_matched in the read model", func() portal.ViewStats { return viewStats(t, base) },
		func(st portal.ViewStats) bool { return st.Jobs == first.Jobs+1 })
	if st.EventsApplied != first.EventsApplied+2 {
		t.Errorf("after two more events the read model applied %d events, want %d", st.EventsApplied, first.EventsApplied+2)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
