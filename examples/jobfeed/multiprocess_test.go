//go:build unix

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/examples/jobfeed/jobfeed"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// The multi-process test runs the job feed as five OS processes on one
// external broker: the portal, the profile service (which reaches the
// portal over HTTP), the recommendation service, and two instances of the
// notification service sharing one data directory, with a daily digest
// every second so that both race for each period. Each process is killed
// with SIGKILL in turn while jobs and registrations come in.

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

// runMultiProcess runs the job feed as five processes and places jobs and
// registrations in five waves; during each wave one process in turn is
// killed with SIGKILL and restarted on the same arguments (so the same
// data directory). Then the same checks as the all-in-one crash test.
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
	portalURL, notifURL := "http://"+portalAddr, "http://"+notifAddr
	notifDir := t.TempDir()
	common := []string{"--broker", url, "--daily-digest", "every 1s"}
	healthy := func(u string) func(*proctest.Process) bool {
		return func(*proctest.Process) bool { return proctest.Healthy(u) }
	}
	// Processes without HTTP declare their subscriptions at start too;
	// their start line says they consume.
	started := func(p *proctest.Process) bool { return strings.Contains(p.Out.String(), "troupe app started") }
	start := func(name string, ready func(*proctest.Process) bool, args ...string) *proctest.Crashing {
		return proctest.StartCrashing(t, name, bin, env, ready, append(slices.Clone(common), args...)...)
	}
	procs := []*proctest.Crashing{
		start("portal", healthy(portalURL), "--services", "portal", "--http", portalAddr, "--data", t.TempDir()),
		start("profile", started, "--services", "profile", "--http", "off", "--data", t.TempDir(), "--portal-url", portalURL),
		start("recommendation", started, "--services", "recommendation", "--http", "off", "--data", t.TempDir()),
		start("notification-1", healthy(notifURL), "--services", "notification", "--http", notifAddr, "--data", notifDir),
		start("notification-2", started, "--services", "notification", "--http", "off", "--data", notifDir),
	}
	current := func() []*proctest.Process {
		var ps []*proctest.Process
		for _, p := range procs {
			ps = append(ps, p.Current())
		}
		return ps
	}

	f := feed{cities: 10, jobsPerCity: 2, candidatesPerCity: 6, run: ns}
	reqs := f.requests()
	var accepted atomic.Int64
	wave := (len(reqs) + len(procs) - 1) / len(procs)
	kills := 0
	for k, p := range procs {
		killed := make(chan struct{})
		go func() {
			defer close(killed)
			time.Sleep(time.Duration(mrand.IntN(30)) * time.Millisecond) // a random moment of the wave
			p.KillAndRestart(t)
		}()
		place(t, reqs[k*wave:min((k+1)*wave, len(reqs))], 4, func() string { return portalURL }, &accepted)
		<-killed
		kills += p.Kills()
	}
	o := settle(t, reqs, portalURL, notifURL, current)
	report(t, "one process per service, "+b.name, o, kills)
	client.CloseIdleConnections()
	for _, p := range procs {
		p.Stop(t)
	}
}
