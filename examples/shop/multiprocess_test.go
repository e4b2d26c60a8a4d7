//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// The multi-process test runs the shop as four OS processes sharing one
// external broker, the way it runs in production, kills each of them with
// SIGKILL in turn while orders arrive and flow, restarts it on its own
// data, and checks through the HTTP API that every order ended once.

// mpProcesses is how the shop is split.
var mpProcesses = [][]string{
	{"orders"},
	{"payment"},
	{"inventory"},
	{"shipping", "notification"},
}

// shopSubscriptions are the shop's subscriptions as "service.name". The test
// needs them to count dead letters and delete the RabbitMQ queues; the NATS
// run checks the list against the consumers the processes declared, so it
// cannot silently fall behind the shop.
var shopSubscriptions = []string{
	"orders.track-order_placed",
	"orders.track-payment_succeeded",
	"orders.track-payment_declined",
	"orders.track-payment_failed",
	"orders.track-inventory_reserved",
	"orders.track-inventory_reservation_failed",
	"orders.track-shipping_arranged",
	"orders.track-payment_refunded",
	"orders.track-customer_notified",
	"payment.charge",
	"payment.refund-payment_failed",
	"payment.refund-inventory_reservation_failed",
	"inventory.reserve",
	"shipping.ship",
	"notification.tell-shipped",
	"notification.tell-declined",
	"notification.tell-refunded",
}

// mpBroker is one external broker the test runs the shop against.
type mpBroker struct {
	name string
	url  func() string
	// probe connects to the broker; it returns an error when there is none.
	probe func(url string) error
	// deadLetters counts the dead letters of namespace ns.
	deadLetters func(t *testing.T, url, ns string) (int, error)
	// checkDeclared checks the shop's subscriptions on the broker against
	// shopSubscriptions.
	checkDeclared func(t *testing.T, url, ns string) error
	// cleanup deletes everything namespace ns left on the broker.
	cleanup func(t *testing.T, url, ns string)
}

func TestMultiProcess(t *testing.T) {
	bin := buildProgram(t)
	for _, b := range []mpBroker{rabbitBroker, natsBroker} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel() // as TestCrashAllInOne's runs
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

func runMultiProcess(t *testing.T, bin string, b mpBroker, url string) {
	ns := "shopmp_" + randomHex(6)
	t.Logf("namespace %s on %s", ns, proctest.Redacted(url))
	// Registered first, so it runs after the processes are gone.
	t.Cleanup(func() { b.cleanup(t, url, ns) })

	procs := map[string]*proctest.Crashing{}
	bases := map[string]string{}
	for _, services := range mpProcesses {
		name := strings.Join(services, ",")
		addr := proctest.FreeAddr(t)
		base := "http://" + addr
		args := append([]string{"--broker", url, "--services", name, "--http", addr, "--data", t.TempDir()}, crashFlags...)
		procs[name] = proctest.StartCrashing(t, name, bin, []string{"SHOP_APP_NAME=" + ns},
			func(*proctest.Process) bool { return proctest.Healthy(base) }, args...)
		bases[services[0]] = base
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, c := range procs {
				t.Logf("--- %s:\n%s", name, proctest.Tail(c.Output(), 30))
			}
		}
	})
	if err := b.checkDeclared(t, url, ns); err != nil {
		t.Error(err)
	}

	// Kill each process in turn while the orders arrive, and again while
	// they flow, restarting it on its own data.
	ld := startLoad(bases["orders"], ns, crashOrders)
	kills := 0
	next := 0
	killWhileFlowing(t, ld, func(t testing.TB) {
		procs[strings.Join(mpProcesses[next%len(mpProcesses)], ",")].KillAndRestart(t)
		next++
		kills++
	}, func() int { return kills })
	ld.wait(t)
	row := settleAndCheck(t, ld, shopURLs{orders: bases["orders"], ledger: bases["payment"], stock: bases["inventory"], notifications: bases["shipping"]}, ns)

	dead, err := b.deadLetters(t, url, ns)
	if err != nil {
		t.Errorf("counting dead letters: %v", err)
	}
	if dead != 0 {
		t.Errorf("%d dead letters, want none", dead)
	}
	crashRow(t, append([]any{"4 processes, " + b.name}, append(row, kills)...)...)
	for _, c := range procs {
		c.Stop(t)
	}
}

func envOr(key, def string) func() string {
	return func() string {
		if v := os.Getenv(key); v != "" {
			return v
		}
		return def
	}
}

// natsBroker is an external NATS server with JetStream: TROUPE_TEST_NATS,
// default the local one.
var natsBroker = mpBroker{
	name: "nats",
	url:  envOr("TROUPE_TEST_NATS", "nats://127.0.0.1:4222"),
	probe: func(url string) error {
		nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	},
	deadLetters: func(t *testing.T, url, ns string) (int, error) {
		var n int
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
	checkDeclared: func(t *testing.T, url, ns string) error {
		var got []string
		err := proctest.WithJetStream(url, func(ctx context.Context, js jetstream.JetStream) error {
			// The subscriptions are the consumers on the streams that
			// hold the namespace's events.
			streams := js.StreamNames(ctx, jetstream.WithStreamListSubject("troupe."+ns+".e.>"))
			for name := range streams.Name() {
				s, err := js.Stream(ctx, name)
				if err != nil {
					return err
				}
				names := s.ConsumerNames(ctx)
				for name := range names.Name() {
					got = append(got, strings.Replace(name, "@", ".", 1))
				}
				if err := names.Err(); err != nil {
					return err
				}
			}
			return streams.Err()
		})
		if err != nil {
			return fmt.Errorf("listing the consumers: %v", err)
		}
		want := slices.Clone(shopSubscriptions)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("the shop declares subscriptions %v, the test knows %v: update shopSubscriptions", got, want)
		}
		return nil
	},
	cleanup: func(t *testing.T, url, ns string) {
		err := proctest.WithJetStream(url, func(ctx context.Context, js jetstream.JetStream) error {
			return natsjs.DeleteNamespace(ctx, js.Conn(), ns)
		})
		if err != nil {
			t.Errorf("cleanup of namespace %s: %v", ns, err)
		}
	},
}

// rabbitBroker is RabbitMQ: TROUPE_TEST_AMQP, default the local one with
// the guest account.
var rabbitBroker = mpBroker{
	name: "rabbitmq",
	url:  envOr("TROUPE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"),
	probe: func(url string) error {
		conn, err := amqp.Dial(url)
		if err != nil {
			return err
		}
		return conn.Close()
	},
	deadLetters: func(t *testing.T, url, ns string) (int, error) {
		n := 0
		err := withChannel(url, func(conn *amqp.Connection) error {
			for _, s := range shopSubscriptions {
				m, err := queueMessages(conn, ns+"."+s+".dlq")
				if err != nil {
					return err
				}
				n += m
			}
			return nil
		})
		return n, err
	},
	checkDeclared: func(t *testing.T, url, ns string) error {
		return withChannel(url, func(conn *amqp.Connection) error {
			for _, s := range shopSubscriptions {
				if _, err := queueMessages(conn, ns+"."+s); err != nil {
					return fmt.Errorf("the test knows subscription %s, but the shop declared no queue for it: update shopSubscriptions: %v", s, err)
				}
			}
			return nil
		})
	},
	cleanup: func(t *testing.T, url, ns string) {
		err := withChannel(url, func(conn *amqp.Connection) error {
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			defer ch.Close()
			// Every queue a subscription may have: its own, its dead letters,
			// and one per retry delay bucket. Deleting a queue that does not
			// exist succeeds on RabbitMQ.
			var queues []string
			for _, s := range shopSubscriptions {
				q := ns + "." + s
				queues = append(queues, q, q+".dlq")
				for _, d := range rabbitmq.DefaultRetryDelays {
					queues = append(queues, fmt.Sprintf("%s.retry.%dms", q, d.Milliseconds()))
				}
			}
			// The journal behind the dashboard and the trace command
			// (operator.Install) has a queue of its own.
			queues = append(queues, ns+".journal")
			for _, q := range queues {
				if _, err := ch.QueueDelete(q, false, false, false); err != nil {
					return fmt.Errorf("delete queue %s: %w", q, err)
				}
			}
			if err := ch.ExchangeDelete("troupe."+ns, false, false); err != nil {
				return fmt.Errorf("delete exchange troupe.%s: %w", ns, err)
			}
			return nil
		})
		if err != nil {
			t.Errorf("cleanup of namespace %s: %v", ns, err)
		}
		if left := rabbitLeftovers(ns); len(left) > 0 {
			t.Errorf("cleanup of namespace %s left queues %v", ns, left)
		}
	},
}

func withChannel(url string, f func(*amqp.Connection) error) error {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return err
	}
	defer conn.Close()
	return f(conn)
}

// queueMessages returns how many ready messages queue q holds. A missing
// queue is an error.
func queueMessages(conn *amqp.Connection, q string) (int, error) {
	ch, err := conn.Channel() // a failed passive declare closes the channel
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return info.Messages, nil
}

// rabbitLeftovers lists the queues of namespace ns that still exist, when
// rabbitmqctl can tell (a local broker); nil otherwise.
func rabbitLeftovers(ns string) []string {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "-q", "list_queues", "name").Output()
	if err != nil {
		return nil
	}
	var left []string
	for line := range bytes.Lines(out) {
		if name := string(bytes.TrimSpace(line)); strings.HasPrefix(name, ns+".") {
			left = append(left, name)
		}
	}
	return left
}
