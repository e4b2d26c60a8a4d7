//go:build unix

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// The multi-process crash test runs the food-delivery system as four OS
// processes sharing one external broker, each with its own data directory,
// with failing restaurants and a payment service that crashes after moving
// money now and then. While the orders flow, it kills each process in turn
// with SIGKILL and starts it again on the same data; then it checks through
// the HTTP API that every order ended in one terminal state, the money
// reconciles and nothing happened twice.

const mpOrders = 600

// mpBroker is an external broker the test runs the system against.
type mpBroker struct {
	name     string
	env, def string // the URL: $env, else def
	// postgres keeps the services' state in one PostgreSQL database (the
	// tests', in a schema of the run's own) instead of a SQLite file per
	// process: each broker run covers one of the two.
	postgres    bool
	probe       func(url string) error
	deadLetters func(url, ns string, subs []string) (int, error)
	cleanup     func(url, ns string, subs []string) error
}

func (b mpBroker) url() string {
	if v := os.Getenv(b.env); v != "" {
		return v
	}
	return b.def
}

func TestCrashMultiProcess(t *testing.T) {
	bin := buildProgram(t)
	t.Parallel() // beside TestCrashAllInOne
	for _, b := range []mpBroker{rabbitBroker, natsBroker} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
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
// declaration, so the broker checks never fall behind the code.
func subscriptions() []string {
	app := fooddelivery.NewApp(troupe.Config{}, nil)
	var out []string
	for _, svc := range app.Services() {
		for _, sub := range svc.Subscriptions() {
			out = append(out, sub.String())
		}
	}
	return out
}

func runMultiProcess(t *testing.T, bin string, b mpBroker, url string) {
	began := time.Now()
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd) // never fails, see crypto/rand.Read
	ns := "fdmp_" + hex.EncodeToString(rnd)
	subs := subscriptions()
	t.Cleanup(func() { // registered first, so it runs after the processes are gone
		if err := b.cleanup(url, ns, subs); err != nil {
			t.Errorf("cleanup of namespace %s: %v", ns, err)
		}
	})
	env := []string{"FOODDELIVERY_APP_NAME=" + ns}
	var dbArgs []string
	store := "SQLite"
	if b.postgres {
		dbArgs, store = []string{"--db", storetest.Postgres(t, ns).URL}, "PostgreSQL"
	}
	type proc struct {
		services string
		addr     string
		more     []string
		c        *proctest.Crashing
	}
	procs := []*proc{
		{services: "order"},
		{services: "payment", more: []string{"--payment-crash-rate", fmt.Sprint(crashCrashRate)}},
		{services: "restaurant", more: []string{"--restaurant-failure-rate", fmt.Sprint(crashFailureRate)}},
		{services: "notification,delivery-partner,loyalty"},
	}
	for _, p := range procs {
		p.addr = proctest.FreeAddr(t)
		args := append([]string{"--broker", url, "--services", p.services, "--http", p.addr, "--data", t.TempDir(), "--log-format", "text", "--log-level", "warn"}, dbArgs...)
		args = append(args, p.more...)
		base := "http://" + p.addr
		p.c = proctest.StartCrashing(t, p.services, bin, env, func(*proctest.Process) bool { return proctest.Healthy(base) }, args...)
	}
	c := crashClient{orders: "http://" + procs[0].addr, ledger: "http://" + procs[1].addr,
		notifications: "http://" + procs[3].addr, loyalty: "http://" + procs[3].addr}
	t.Logf("4 processes on %s and %s, namespace %s, started in %s", b.name, store, ns, time.Since(began).Round(time.Millisecond))

	// The orders flow at a bounded rate, so that every kill falls in the
	// middle of it; the simulation retries each order through the order
	// process's kill with its Idempotency-Key.
	type result struct {
		rep fooddelivery.Report
		err error
	}
	done := make(chan result, 1)
	var progress proctest.Buffer
	go func() {
		rep, err := fooddelivery.Simulate(context.Background(), fooddelivery.Simulation{
			BaseURL: c.orders, LedgerURL: c.ledger, NotificationsURL: c.notifications,
			Orders: mpOrders, Rate: 60, Concurrency: 8, Timeout: 3 * time.Minute, RetryFor: 2 * time.Minute,
			Client: httpClient, Progress: &progress,
		})
		done <- result{rep, err}
	}()
	var res *result
	ended := func() error {
		if res == nil {
			select {
			case r := <-done:
				res = &r
			default:
				return nil
			}
		}
		if res.err != nil {
			return fmt.Errorf("simulate: %w\n%s", res.err, progress.String())
		}
		return errors.New("the simulation ended before the kills")
	}
	// Each process dies at its own point of the flow: the first when about
	// a sixth of the orders are in, the last at about two thirds.
	for i, p := range procs {
		c.waitForCount(t, procs[0].c.Current(), (i+1)*mpOrders/6+mrand.IntN(mpOrders/20), ended)
		p.c.KillAndRestart(t)
	}
	if res == nil {
		select {
		case r := <-done:
			res = &r
		case <-time.After(5 * time.Minute):
			t.Fatalf("the simulation did not end within 5 minutes:\n%s", progress.String())
		}
	}
	if res.err != nil {
		t.Fatalf("simulate: %v\n%s", res.err, progress.String())
	}
	var table strings.Builder
	res.rep.WriteTable(&table)
	t.Logf("%s, %d orders through 4 processes, each killed once:\n%s", b.name, mpOrders, table.String())
	if !res.rep.OK() {
		t.Errorf("the run did not reconcile:\n%s", table.String())
	}

	accepted := make(map[string]string, len(res.rep.IDs))
	var l order.List
	if err := getJSON(fmt.Sprintf("%s/orders?limit=%d", c.orders, mpOrders), &l); err != nil {
		t.Fatal(err)
	}
	for _, o := range l.Orders {
		accepted[o.ID] = o.Customer
	}
	for _, id := range res.rep.IDs {
		if _, ok := accepted[id]; !ok {
			t.Errorf("order %s was accepted, and is not listed", id)
		}
	}
	row, problems := c.check(t, accepted, mpOrders)
	for _, p := range problems {
		t.Error(p)
	}
	dead, err := b.deadLetters(url, ns, subs)
	if err != nil || dead != 0 {
		t.Errorf("%d dead letters (%v), want none: every failure was compensated", dead, err)
	}
	kills := 0
	for _, p := range procs {
		kills += p.c.Kills()
	}
	tb := proctest.Table{Title: "fooddelivery crash test, one process per service (order, payment, restaurant, the other three), each killed once",
		Header: []string{"mode", "accepted", "completed", "compensated", "lost", "double effects", "kills", "took"}}
	tb.Row(append([]any{b.name + ", " + store}, row.cells(kills, time.Since(began))...)...)
	tb.Log(t)
	if t.Failed() {
		for _, p := range procs {
			t.Logf("%s", p.c.Output())
		}
	}
	httpClient.CloseIdleConnections()
	for _, p := range procs {
		p.c.Stop(t)
	}
}

// rabbitBroker is RabbitMQ: $TROUPE_TEST_AMQP, default the local one.
var rabbitBroker = mpBroker{
	name: "rabbitmq", env: "TROUPE_TEST_AMQP", def: "amqp://guest:guest@127.0.0.1:5672/", postgres: true,
	probe: func(url string) error {
		conn, err := amqp.Dial(url)
		if err != nil {
			return err
		}
		return conn.Close()
	},
	deadLetters: func(url, ns string, subs []string) (int, error) {
		n := 0
		err := withAMQP(url, func(conn *amqp.Connection) error {
			for _, s := range subs {
				ch, err := conn.Channel() // a failed passive declare closes it
				if err != nil {
					return err
				}
				q, err := ch.QueueDeclarePassive(ns+"."+s+".dlq", true, false, false, false, nil)
				ch.Close()
				if err != nil {
					return err
				}
				n += q.Messages
			}
			return nil
		})
		return n, err
	},
	cleanup: func(url, ns string, subs []string) error {
		return withAMQP(url, func(conn *amqp.Connection) error {
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			defer ch.Close()
			for _, s := range subs {
				q := ns + "." + s
				names := []string{q, q + ".dlq"}
				for _, d := range rabbitmq.DefaultRetryDelays {
					names = append(names, fmt.Sprintf("%s.retry.%dms", q, d.Milliseconds()))
				}
				for _, name := range names {
					if _, err := ch.QueueDelete(name, false, false, false); err != nil {
						return fmt.Errorf("delete queue %s: %w", name, err)
					}
				}
			}
			return ch.ExchangeDelete("troupe."+ns, false, false)
		})
	},
}

func withAMQP(url string, f func(*amqp.Connection) error) error {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return err
	}
	defer conn.Close()
	return f(conn)
}

// natsBroker is NATS with JetStream: $TROUPE_TEST_NATS, default the local one.
var natsBroker = mpBroker{
	name: "nats", env: "TROUPE_TEST_NATS", def: "nats://127.0.0.1:4222",
	probe: func(url string) error {
		nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	},
	deadLetters: func(url, ns string, _ []string) (int, error) {
		n := 0
		err := proctest.WithJetStream(url, func(ctx context.Context, js jetstream.JetStream) error {
			s, err := js.Stream(ctx, "TROUPE_"+ns+"_DLQ")
			if err != nil {
				return err
			}
			info, err := s.Info(ctx)
			if err != nil {
				return err
			}
			n = int(info.State.Msgs)
			return nil
		})
		return n, err
	},
	cleanup: func(url, ns string, _ []string) error {
		return proctest.WithJetStream(url, func(ctx context.Context, js jetstream.JetStream) error {
			return natsjs.DeleteNamespace(ctx, js.Conn(), ns)
		})
	},
}
