//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/examples/jobfeed/notification"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
)

// The crash tests place jobs and registrations over HTTP, each with an
// Idempotency-Key and retried until it is accepted, while kill -9 hits the
// program; then, through the HTTP API only, they check that every accepted
// transaction ended in exactly one terminal state, none was lost, and no
// candidate heard of a job twice.

// feed is a load of jobs and candidates that match in a way the test
// knows: every candidate matches exactly the jobs of their own city.
type feed struct {
	cities, jobsPerCity, candidatesPerCity int
	run                                    string // makes keys and emails unique to one run
}

func (f feed) city(i int) string { return fmt.Sprintf("City%d", i%f.cities) }

// requests returns the POSTs in the order they are placed: jobs and
// registrations interleaved, so that matches are found from both sides.
func (f feed) requests() []request {
	var jobs, cands []request
	for i := range f.cities * f.jobsPerCity {
		jobs = append(jobs, request{path: "/jobs", key: fmt.Sprintf("%s-job-%d", f.run, i), city: f.city(i),
			body: fmt.Sprintf(`{"title":"Go developer %d","company":"Acme","location":%q,"skills":["go"],"min_years":1}`, i, f.city(i))})
	}
	for i := range f.cities * f.candidatesPerCity {
		freq := portal.Instant
		if i%2 == 1 {
			freq = portal.Daily
		}
		cands = append(cands, request{path: "/candidates", key: fmt.Sprintf("%s-cand-%d", f.run, i), city: f.city(i),
			body: fmt.Sprintf(`{"name":"Candidate %d","email":"c%d-%s@example.com","preferences":{"frequency":%q,"locations":[%q]},"resume":"Go developer, 5 years of Go."}`,
				i, i, f.run, freq, f.city(i))})
	}
	var out []request
	for len(jobs)+len(cands) > 0 {
		if len(jobs) > 0 && (len(cands) == 0 || len(out)%8 == 0) {
			out, jobs = append(out, jobs[0]), jobs[1:]
			continue
		}
		out, cands = append(out, cands[0]), cands[1:]
	}
	return out
}

type request struct {
	path, key, city, body string
	id                    string // set once accepted
}

// place sends every request with its Idempotency-Key from workers
// goroutines, retrying each (connection refused while the program is
// down, a 503 from a database mid-restart) until it is accepted; base
// tells where the portal is now. accepted counts the 201s as they come.
// Any other answer fails the test.
func place(t *testing.T, reqs []request, workers int, base func() string, accepted *atomic.Int64) {
	t.Helper()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				r := &reqs[i]
				deadline := time.Now().Add(2 * time.Minute)
				for {
					status, b := httpDoKey("POST", base()+r.path, r.body, r.key)
					if status == http.StatusCreated {
						var c portal.Created
						if err := json.Unmarshal(b, &c); err != nil || c.ID == "" {
							errs <- fmt.Errorf("POST %s answered %s", r.path, b)
							return
						}
						r.id = c.ID
						accepted.Add(1)
						break
					}
					if status != 0 && status != http.StatusServiceUnavailable && status != http.StatusInternalServerError {
						errs <- fmt.Errorf("POST %s (key %s): %d %s", r.path, r.key, status, b)
						return
					}
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("POST %s (key %s) not accepted within 2 minutes; last %d %s", r.path, r.key, status, b)
						return
					}
					time.Sleep(20 * time.Millisecond) // the program is restarting: retry with the same key
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// httpDoKey is httpDo with an Idempotency-Key.
func httpDoKey(method, url, body, key string) (int, []byte) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// outcome is one row of the crash table.
type outcome struct {
	accepted, completed, compensated, lost, double int
	problems                                       []string
}

// settle waits until the lists report every transaction terminal and no
// match waiting for a digest, then checks each transaction through the API.
// procs are watched while waiting.
func settle(t *testing.T, reqs []request, portalURL, notifURL string, procs func() []*proctest.Process) outcome {
	t.Helper()
	var cands, jobs int
	for _, r := range reqs {
		if r.path == "/jobs" {
			jobs++
		} else {
			cands++
		}
	}
	var last string
	began := time.Now()
	proctest.WaitFor(t, "every transaction terminal and every match notified", 3*time.Minute, procs(), func() bool {
		var cl portal.CandidateList
		var jl portal.JobList
		var sl notification.Sent
		if !getJSONOK(portalURL+"/candidates", &cl) || !getJSONOK(portalURL+"/jobs", &jl) || !getJSONOK(notifURL+"/notifications", &sl) {
			return false
		}
		last = fmt.Sprintf("candidates %+v, jobs %+v, messages %+v waiting %v", cl.Counts, jl.Counts, sl.Counts, sl.Waiting)
		return cl.Count == cands && cl.Settled() && jl.Count == jobs && jl.Settled() && sl.Settled() && sl.Waiting[portal.Daily] == 0
	})
	t.Logf("settled in %s: %s", time.Since(began).Round(time.Millisecond), last)

	// A match in flight to a notification process that was killed is
	// redelivered once its lease runs out: the checks are repeated until
	// they pass or a minute has gone by. Double effects never go away.
	deadline := time.Now().Add(time.Minute)
	for {
		o := check(reqs, portalURL, notifURL)
		if len(o.problems) == 0 || o.double > 0 || time.Now().After(deadline) {
			return o
		}
		time.Sleep(200 * time.Millisecond) // poll interval: nothing signals the end of a redelivery
	}
}

// check reads every accepted transaction through the API and counts the
// outcomes.
func check(reqs []request, portalURL, notifURL string) outcome {
	var o outcome
	bad := func(format string, args ...any) { o.problems = append(o.problems, fmt.Sprintf(format, args...)) }
	jobsIn := make(map[string][]string) // city → job ids
	for _, r := range reqs {
		if r.id == "" {
			continue
		}
		o.accepted++
		if r.path == "/jobs" {
			jobsIn[r.city] = append(jobsIn[r.city], r.id)
		}
	}
	for _, r := range reqs {
		switch {
		case r.id == "":
		case r.path == "/jobs":
			var j portal.JobView
			if !getJSONOK(portalURL+"/jobs/"+r.id, &j) {
				o.lost++
				bad("job %s is gone", r.id)
				continue
			}
			switch j.Status {
			case portal.JobStatusMatched, portal.JobStatusUnmatched:
				o.completed++
			default:
				bad("job %s is %s", r.id, j.Status)
			}
		default:
			c, ok := getCandidate(portalURL, r.id)
			if !ok {
				o.lost++
				bad("candidate %s is gone", r.id)
				continue
			}
			switch c.Status {
			case portal.StatusProfiled:
				o.completed++
			case portal.StatusProfileFailed:
				o.compensated++
				continue
			default:
				bad("candidate %s is %s", r.id, c.Status)
				continue
			}
			want := slices.Sorted(slices.Values(jobsIn[r.city]))
			var got []string
			for _, m := range c.Matches {
				got = append(got, m.JobID)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				bad("candidate %s matches %v, want %v", r.id, got, want)
			}
			s, ok := getSent(notifURL, r.id)
			if !ok {
				bad("no messages of candidate %s", r.id)
				continue
			}
			var heard []string
			for _, m := range s.Messages {
				if m.Status != notification.StatusSent {
					bad("message %s is %s", m.ID, m.Status)
				}
				for _, j := range m.Jobs {
					heard = append(heard, j.JobID)
				}
			}
			slices.Sort(heard)
			if len(heard) > len(slices.Compact(slices.Clone(heard))) {
				o.double++
				bad("candidate %s heard of some jobs twice: %v", r.id, heard)
			} else if !slices.Equal(heard, want) {
				bad("candidate %s heard of %v, want %v", r.id, heard, want)
			}
		}
	}
	var sl notification.Sent
	if getJSONOK(notifURL+"/notifications", &sl) {
		o.double += sl.Messenger.SentTwice
		if sl.Messenger.SentTwice > 0 {
			bad("the messenger told %d candidates the same thing twice", sl.Messenger.SentTwice)
		}
		if sl.Messenger.Messages != sl.ByStatus[notification.StatusSent] {
			bad("the messenger sent %d messages, the service marked %d sent", sl.Messenger.Messages, sl.ByStatus[notification.StatusSent])
		}
	}
	return o
}

func getJSONOK(url string, v any) bool {
	status, b := httpDo("GET", url, "")
	return status == http.StatusOK && json.Unmarshal(b, v) == nil
}

func report(t *testing.T, mode string, o outcome, kills int) {
	t.Helper()
	tb := proctest.Table{Title: "jobfeed crash test", Header: []string{"mode", "accepted", "completed", "compensated", "lost", "double effects", "kills"}}
	tb.Row(mode, o.accepted, o.completed, o.compensated, o.lost, o.double, kills)
	tb.Log(t)
	for i, p := range o.problems {
		if i == 20 {
			t.Errorf("… and %d more", len(o.problems)-20)
			break
		}
		t.Error(p)
	}
	if o.lost > 0 || o.double > 0 || o.completed+o.compensated != o.accepted {
		t.Errorf("%d accepted, %d completed, %d compensated, %d lost, %d double effects", o.accepted, o.completed, o.compensated, o.lost, o.double)
	}
}

// All services in one process on the embedded broker, killed with SIGKILL
// at random moments while 510 jobs and registrations are placed, and
// restarted on the same data directory each time.
func TestCrashAllInOne(t *testing.T) {
	bin := buildProgram(t)
	addr := proctest.FreeAddr(t)
	base := "http://" + addr
	p := proctest.StartCrashing(t, "jobfeed", bin, nil, func(p *proctest.Process) bool { return proctest.Healthy(base) },
		"--http", addr, "--data", t.TempDir(), "--daily-digest", "every 1s")
	f := feed{cities: 30, jobsPerCity: 2, candidatesPerCity: 15, run: "aio"}
	reqs := f.requests()

	const kills = 6
	var accepted atomic.Int64
	done := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for k := range kills {
			// Kill at a random moment of each sixth of the load, or after
			// it, while the services still work through it.
			threshold := int64((k + 1) * len(reqs) / (kills + 1))
			for accepted.Load() < threshold {
				select {
				case <-done:
					threshold = 0
				case <-time.After(5 * time.Millisecond):
				}
			}
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
			p.KillAndRestart(t)
		}
	}()
	began := time.Now()
	place(t, reqs, 8, func() string { return base }, &accepted)
	close(done)
	<-killed
	t.Logf("placed %d with %d kills in %s", len(reqs), p.Kills(), time.Since(began).Round(time.Millisecond))
	o := settle(t, reqs, base, base, func() []*proctest.Process { return []*proctest.Process{p.Current()} })
	report(t, "all-in-one, embedded", o, p.Kills())
	if p.Kills() < 5 {
		t.Errorf("%d kills, want at least 5", p.Kills())
	}
	client.CloseIdleConnections()
	p.Stop(t)
}
