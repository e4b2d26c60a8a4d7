//go:build unix

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// The multi-process test runs the job feed as five OS processes on one
// external broker: the portal, the profile service (which reaches the
// portal over HTTP), the recommendation service, and two instances of the
// notification service sharing one data directory, with a daily digest
// every second so that both race for each period.

// mpBroker is an external broker the test runs against.
type mpBroker struct {
	name     string
	env, def string // the URL: $env, else def
	probe    func(url string) error
	cleanup  func(url, ns string, subs []string) error
}

func (b mpBroker) url() string {
	if v := os.Getenv(b.env); v != "" {
		return v
	}
	return b.def
}

var brokers = []mpBroker{
	{
		name: "rabbitmq", env: "TROUPE_TEST_AMQP", def: "amqp://guest:guest@127.0.0.1:5672/",
		probe: func(url string) error {
			conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
			if err != nil {
				return err
			}
			return conn.Close()
		},
		cleanup: func(url, ns string, subs []string) error {
			conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
			if err != nil {
				return err
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			defer ch.Close()
			// Each subscription has a queue, a dead-letter queue and a queue
			// per retry delay; deleting a missing queue succeeds.
			for _, s := range subs {
				q := ns + "." + s
				queues := []string{q, q + ".dlq"}
				for _, d := range rabbitmq.DefaultRetryDelays {
					queues = append(queues, fmt.Sprintf("%s.retry.%dms", q, d.Milliseconds()))
				}
				for _, q := range queues {
					if _, err := ch.QueueDelete(q, false, false, false); err != nil {
						return fmt.Errorf("delete queue %s: %w", q, err)
					}
				}
			}
			return ch.ExchangeDelete("troupe."+ns, false, false)
		},
	},
	{
		name: "nats", env: "TROUPE_TEST_NATS", def: "nats://127.0.0.1:4222",
		probe: func(url string) error {
			nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
			if err != nil {
				return err
			}
			nc.Close()
			return nil
		},
		cleanup: func(url, ns string, _ []string) error {
			nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			return natsjs.DeleteNamespace(ctx, nc, ns)
		},
	},
}

func TestMultiProcess(t *testing.T) {
	bin := buildProgram(t)
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			url := b.url()
			if err := b.probe(url); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s at %s: %v (CI needs it)", b.name, proctest.Redacted(url), err)
				}
				t.Skipf("no %s at %s (%v); start it to run this test", b.name, proctest.Redacted(url), err)
			}
			runMultiProcess(t, bin, b, url)
		})
	}
}

// subscriptions lists the app's subscriptions as "service.name", from its
// declaration, so the cleanup never falls behind the code.
func subscriptions(t *testing.T) []string {
	app, err := jobfeed.NewApp(troupe.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var subs []string
	for _, s := range app.Services() {
		for _, sub := range s.Subscriptions() {
			subs = append(subs, sub.String())
		}
	}
	return subs
}

func runMultiProcess(t *testing.T, bin string, b mpBroker, url string) {
	rnd := make([]byte, 5)
	_, _ = rand.Read(rnd)
	ns := "jobfeedmp_" + hex.EncodeToString(rnd)
	subs := subscriptions(t)
	t.Cleanup(func() { // registered first, so it runs after the processes are gone
		if err := b.cleanup(url, ns, subs); err != nil {
			t.Errorf("cleanup of namespace %s: %v", ns, err)
		}
	})
	env := []string{"JOBFEED_APP_NAME=" + ns}
	portalAddr, notifAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	notifDir := t.TempDir()
	common := []string{"--broker", url, "--daily-digest", "every 1s"}
	start := func(name string, args ...string) *process {
		return startProcess(t, bin, name, env, append(slices.Clone(common), args...)...)
	}
	procs := []*process{
		start("portal", "--services", "portal", "--http", portalAddr, "--data", t.TempDir()),
		start("profile", "--services", "profile", "--http", "off", "--data", t.TempDir(), "--portal-url", "http://"+portalAddr),
		start("recommendation", "--services", "recommendation", "--http", "off", "--data", t.TempDir()),
		start("notification-1", "--services", "notification", "--http", notifAddr, "--data", notifDir),
		start("notification-2", "--services", "notification", "--http", "off", "--data", notifDir),
	}
	portalURL, notifURL := "http://"+portalAddr, "http://"+notifAddr
	for _, u := range []string{portalURL, notifURL} {
		waitFor(t, u+"/healthz", procs, func() bool { s, _ := httpDo("GET", u+"/healthz", ""); return s == 200 })
	}
	// The processes without HTTP declare their subscriptions at start too;
	// wait for their start lines so no event precedes their queues.
	waitFor(t, "every process to start", procs, func() bool {
		for _, p := range procs {
			if !strings.Contains(p.out.String(), "troupe app started") {
				return false
			}
		}
		return true
	})

	const jobs = 4
	var jobIDs []string
	for i := range jobs {
		jobIDs = append(jobIDs, postJSON(t, portalURL, "/jobs",
			fmt.Sprintf(`{"title":"Go developer %d","company":"Acme","location":"remote","skills":["go"],"min_years":1}`, i)))
	}
	ada := postJSON(t, portalURL, "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"instant"},"resume":"Go, 3 years."}`)
	dan := postJSON(t, portalURL, "/candidates", `{"name":"Dan","email":"dan@example.com","preferences":{"frequency":"daily"},"resume":"Go, 3 years."}`)
	// One more job after the candidates, matched from the other side.
	jobIDs = append(jobIDs, postJSON(t, portalURL, "/jobs", `{"title":"Go lead","company":"Initech","location":"remote","skills":["go"],"min_years":2}`))
	slices.Sort(jobIDs)

	for _, id := range []string{ada, dan} {
		waitFor(t, "the matches of "+id, procs, func() bool {
			c, ok := getCandidate(portalURL, id)
			return ok && c.Status == "profiled" && len(c.Matches) == len(jobIDs)
		})
	}
	// Each job reaches each candidate once: Ada in instant messages, Dan
	// in digests, whichever notification process handled the event or ran
	// the period.
	for _, tc := range []struct {
		id   string
		kind portal.Frequency
	}{{ada, portal.Instant}, {dan, portal.Daily}} {
		var got []string
		waitFor(t, fmt.Sprintf("%s messages with every job for %s", tc.kind, tc.id), procs, func() bool {
			s, ok := getSent(notifURL, tc.id)
			if !ok {
				return false
			}
			got = got[:0]
			periods := make(map[string]bool)
			for _, m := range s.Messages {
				if m.Kind != tc.kind {
					t.Fatalf("candidate %s got a %s message, want only %s", tc.id, m.Kind, tc.kind)
				}
				if m.Kind != portal.Instant {
					if periods[m.Period] {
						t.Fatalf("candidate %s got two digests for period %s: %+v", tc.id, m.Period, s.Messages)
					}
					periods[m.Period] = true
				}
				for _, j := range m.Jobs {
					got = append(got, j.JobID)
				}
			}
			return len(got) >= len(jobIDs)
		})
		slices.Sort(got)
		if !slices.Equal(got, jobIDs) {
			t.Errorf("candidate %s heard of jobs %v, want each of %v once", tc.id, got, jobIDs)
		}
	}
	client.CloseIdleConnections()
	for _, p := range procs {
		p.stop(t)
	}
}
