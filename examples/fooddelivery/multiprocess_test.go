//go:build unix

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/notification"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// The multi-process test runs the food-delivery system as four OS
// processes sharing one external broker, with failing restaurants and a
// payment service that crashes after moving money now and then, and checks
// that every order ends as its fate says and the money reconciles.

const (
	mpOrders      = 1000
	mpFailureRate = 0.2
	mpCrashRate   = 0.05
)

// mpBroker is an external broker the test runs the system against.
type mpBroker struct {
	name     string
	env, def string // the URL: $env, else def
	// killRestaurant kills the restaurant process mid-run and starts
	// another. Only where the broker hands a dead consumer's events on at
	// once (RabbitMQ, when the connection drops); NATS waits for the lease
	// to run out, 30s.
	killRestaurant bool
	probe          func(url string) error
	deadLetters    func(url, ns string, subs []string) (int, error)
	cleanup        func(url, ns string, subs []string) error
}

func (b mpBroker) url() string {
	if v := os.Getenv(b.env); v != "" {
		return v
	}
	return b.def
}

func TestMultiProcess(t *testing.T) {
	bin := buildProgram(t)
	for _, b := range []mpBroker{rabbitBroker, natsBroker} {
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
// declaration, so the broker checks never fall behind the code.
func subscriptions() []string {
	app := fooddelivery.NewApp(troupe.Config{}, fooddelivery.Options{})
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
	orderAddr, paymentAddr, notifyAddr := proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreeAddr(t)
	common := func(services, httpAddr string, more ...string) []string {
		return append([]string{"--broker", url, "--services", services, "--http", httpAddr, "--data", t.TempDir(), "--log-format", "text"}, more...)
	}
	procs := []*proctest.Process{
		start(t, bin, env, common("order", orderAddr)...),
		start(t, bin, env, common("payment", paymentAddr, "--payment-crash-rate", fmt.Sprint(mpCrashRate))...),
		start(t, bin, env, common("restaurant", "off", "--restaurant-failure-rate", fmt.Sprint(mpFailureRate))...),
		start(t, bin, env, common("notification,delivery-partner,loyalty", notifyAddr)...),
	}
	for _, p := range procs {
		waitFor(t, p.Name+" to start", 30*time.Second, func() bool { return strings.Contains(p.Out.String(), "troupe app started") }, procs...)
	}
	t.Logf("4 processes on %s, namespace %s, started in %s", b.name, ns, time.Since(began).Round(time.Millisecond))

	// A third of the way in, the restaurant process dies with SIGKILL and
	// a new one takes over: the broker hands the events it held to the new
	// one, which may confirm or fail some orders a second time.
	restaurants := []*proctest.Process{procs[2]}
	replaced := make(chan *proctest.Process, 1)
	if b.killRestaurant {
		go func() {
			defer close(replaced)
			deadline := time.Now().Add(60 * time.Second)
			for {
				var books struct{ Charges int }
				if getJSON("http://"+paymentAddr+"/ledger", &books) == nil && books.Charges >= mpOrders/3 {
					break
				}
				if time.Now().After(deadline) {
					return
				}
				time.Sleep(20 * time.Millisecond) // poll interval
			}
			_ = procs[2].Cmd.Process.Kill()
			<-procs[2].Done()
			replaced <- start(t, bin, env, common("restaurant", "off", "--restaurant-failure-rate", fmt.Sprint(mpFailureRate))...)
		}()
	} else {
		close(replaced)
	}

	var progress strings.Builder
	rep, err := fooddelivery.Simulate(context.Background(), fooddelivery.Simulation{
		BaseURL: "http://" + orderAddr, LedgerURL: "http://" + paymentAddr,
		Orders: mpOrders, Timeout: 90 * time.Second, Progress: &progress, Client: httpClient,
	})
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, progress.String())
	}
	if b.killRestaurant {
		np, ok := <-replaced
		if !ok {
			t.Fatal("the restaurant process was never killed: the orders were not charged in time")
		}
		restaurants = append(restaurants, np)
		t.Logf("killed the restaurant process (pid %d) a third of the way in; pid %d took over", procs[2].Cmd.Process.Pid, np.Cmd.Process.Pid)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("%s, %d orders through 4 processes, restaurant failure rate %.2f, payment crash rate %.2f:\n%s", b.name, mpOrders, mpFailureRate, mpCrashRate, table.String())
	if !rep.OK() {
		t.Errorf("the run did not reconcile:\n%s", table.String())
	}
	if rep.Ledger == nil || rep.Ledger.SimulatedCrashes == 0 || rep.Ledger.Redeliveries < rep.Ledger.SimulatedCrashes {
		t.Errorf("ledger %+v: want crashes, each redelivered by the broker without moving money", rep.Ledger)
	}

	// Each order ended as its fate says: the restaurant process decided it.
	var l order.List
	if err := getJSON(fmt.Sprintf("http://%s/orders?limit=%d", orderAddr, mpOrders), &l); err != nil {
		t.Fatal(err)
	}
	status := make(map[string]order.Status)
	for _, o := range l.Orders {
		status[o.ID] = o.Status
	}
	// An order whose last restaurant attempt the kill cut short is
	// abandoned and compensated, whatever its fate said: the attempt counted.
	abandoned := make(map[string]bool)
	abandonRe := regexp.MustCompile(`event abandoned[^\n]*? correlation=([0-9a-f]+)`)
	for _, p := range restaurants {
		for _, m := range abandonRe.FindAllStringSubmatch(p.Out.String(), -1) {
			abandoned[m[1]] = true
		}
	}
	if len(abandoned) > 0 {
		t.Logf("orders whose last restaurant attempt died with the killed process, compensated: %d", len(abandoned))
	}
	var assigned, refunded, wrong int
	for _, id := range rep.IDs {
		want := order.StatusAssigned
		if k := restaurant.Decide(id, mpFailureRate, 4).Kind; k == restaurant.Reject || k == restaurant.Down || abandoned[id] {
			want = order.StatusRefunded
		}
		switch {
		case status[id] != want:
			if wrong++; wrong <= 10 {
				t.Errorf("order %s is %q, want %s", id, status[id], want)
			}
		case want == order.StatusAssigned:
			assigned++
		default:
			refunded++
		}
	}
	if refunded == 0 {
		t.Error("no order was refunded: the failure path was not exercised")
	}

	// The notification process told every customer once per outcome.
	var out notification.Outbox
	if err := getJSON("http://"+notifyAddr+"/notifications?customer=nobody", &out); err != nil {
		t.Fatal(err)
	}
	for k, w := range map[notification.Kind]int{
		notification.KindConfirmed: assigned, notification.KindCourier: assigned,
		notification.KindCancelled: refunded, notification.KindRefunded: refunded,
	} {
		if out.AllByKind[k] != w {
			t.Errorf("%d %s messages, want %d", out.AllByKind[k], k, w)
		}
	}

	// Each service did its part once per order, in its own process.
	// Money and points move once per order whatever was redelivered; the
	// restaurant, which holds no state, may repeat itself after the kill.
	for _, e := range []struct {
		procs     []*proctest.Process
		re        *regexp.Regexp
		want      int
		mayRepeat bool
	}{
		{procs[1:2], regexp.MustCompile(`payment: charged order ([0-9a-f]+) `), mpOrders, false},
		{procs[1:2], regexp.MustCompile(`payment: refunded order ([0-9a-f]+) `), refunded, false},
		{restaurants, regexp.MustCompile(`restaurant: \S+ confirmed order ([0-9a-f]+),`), assigned, b.killRestaurant},
		{procs[3:4], regexp.MustCompile(`loyalty: \d+ points to \S+ for order ([0-9a-f]+)`), assigned, false},
	} {
		per := make(map[string]int)
		for _, p := range e.procs {
			for _, m := range e.re.FindAllStringSubmatch(p.Out.String(), -1) {
				per[m[1]]++
			}
		}
		repeated := 0
		for _, n := range per {
			repeated += n - 1
		}
		if len(per) != e.want || (repeated != 0 && !e.mayRepeat) {
			t.Errorf("%s: %d orders, %d repeats; want %d orders, none repeated", e.re, len(per), repeated, e.want)
		} else if repeated > 0 {
			t.Logf("%s: %d repeats after the kill, absorbed downstream", e.re, repeated)
		}
	}

	dead, err := b.deadLetters(url, ns, subs)
	if err != nil || dead != 0 {
		t.Errorf("%d dead letters (%v), want none: every failure was compensated", dead, err)
	}
	httpClient.CloseIdleConnections()
	for _, p := range append(procs, restaurants[1:]...) {
		if !p.Exited() {
			p.Stop(t)
		}
	}
	t.Logf("%s: %d assigned, %d refunded, %d dead letters, test took %s", b.name, assigned, refunded, dead, time.Since(began).Round(time.Millisecond))
}

// rabbitBroker is RabbitMQ: $TROUPE_TEST_AMQP, default the local one.
var rabbitBroker = mpBroker{
	name: "rabbitmq", env: "TROUPE_TEST_AMQP", def: "amqp://guest:guest@127.0.0.1:5672/", killRestaurant: true,
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
