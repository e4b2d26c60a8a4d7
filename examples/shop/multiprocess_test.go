//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
// external broker, the way it runs in production, and checks that every
// order reaches the end of the flow exactly once in the read model.

const (
	mpOrders      = 1000 // orders placed per broker
	mpParallelism = 16   // POSTs in flight at once
)

// mpProcesses is how the shop is split: the orders service serves HTTP, the
// others run without it.
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
	"orders.track-inventory_reserved",
	"orders.track-shipping_arranged",
	"orders.track-customer_notified",
	"payment.charge",
	"inventory.reserve",
	"shipping.ship",
	"notification.tell-customer",
}

// wantTimeline is the event types of a fulfilled order, in causal order,
// with the service that publishes each.
var wantTimeline = []struct{ typ, service string }{
	{"order_placed.v1", "orders"},
	{"payment_succeeded.v1", "payment"},
	{"inventory_reserved.v1", "inventory"},
	{"shipping_arranged.v1", "shipping"},
	{"customer_notified.v1", "notification"},
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
	if testing.Short() {
		t.Skip("builds the program and runs 1,000 orders through four processes per broker")
	}
	bin := buildShop(t)
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

// buildShop builds the program into a temporary directory.
func buildShop(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	bin := filepath.Join(t.TempDir(), "shop")
	start := time.Now()
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the shop in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// shopProcess is one running shop process.
type shopProcess struct {
	services string
	cmd      *exec.Cmd
	out      *proctest.Buffer
	exited   chan struct{}
	waitErr  error // set before exited closes
}

func (p *shopProcess) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// tail returns the last n lines the process wrote.
func (p *shopProcess) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.out.String(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("(%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func startShopProcess(t *testing.T, bin, ns, broker string, services []string, httpAddr string) *shopProcess {
	t.Helper()
	p := &shopProcess{services: strings.Join(services, ","), out: &proctest.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "--broker", broker, "--services", p.services, "--http", httpAddr, "--data", t.TempDir())
	p.cmd.Env = append(os.Environ(), "SHOP_APP_NAME="+ns)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.hasExited() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func runMultiProcess(t *testing.T, bin string, b mpBroker, url string) {
	began := time.Now()
	ns := "shopmp_" + randomHex(6)
	t.Logf("namespace %s on %s", ns, proctest.Redacted(url))
	// Registered first, so it runs after the processes are gone.
	t.Cleanup(func() { b.cleanup(t, url, ns) })

	addr := proctest.FreeAddr(t)
	var procs []*shopProcess
	for _, services := range mpProcesses {
		httpAddr := "off"
		if slices.Contains(services, "orders") {
			httpAddr = addr
		}
		procs = append(procs, startShopProcess(t, bin, ns, url, services, httpAddr))
	}
	dump := func() string {
		var sb strings.Builder
		for _, p := range procs {
			fmt.Fprintf(&sb, "\n--- process %s (last lines):\n%s\n", p.services, p.tail(20))
		}
		return sb.String()
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"%s", append(args, dump())...)
	}
	// wait calls ready until it reports true, a process exits, or the
	// deadline passes; every interval it logs progress, when given.
	wait := func(what string, limit time.Duration, ready func() bool, progress func()) {
		t.Helper()
		deadline := time.Now().Add(limit)
		lastLog := time.Now()
		for !ready() {
			for _, p := range procs {
				if p.hasExited() {
					fail("process %s exited (%v) while waiting for %s", p.services, p.waitErr, what)
				}
			}
			if time.Now().After(deadline) {
				fail("timed out after %s waiting for %s", limit, what)
			}
			if progress != nil && time.Since(lastLog) >= 5*time.Second {
				progress()
				lastLog = time.Now()
			}
			time.Sleep(50 * time.Millisecond) // poll interval
		}
	}

	for _, p := range procs {
		wait("process "+p.services+" to start", 30*time.Second, func() bool {
			return strings.Contains(p.out.String(), "troupe app started")
		}, nil)
	}
	t.Logf("4 processes started in %s: %s", time.Since(began).Round(time.Millisecond), processList(procs))
	if err := b.checkDeclared(t, url, ns); err != nil {
		t.Error(err)
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: mpParallelism}}
	defer client.CloseIdleConnections()
	base := "http://" + addr

	// Place the orders, mpParallelism at a time. Half are a book and half a
	// pen, so the stock (500 books, 1000 pens) covers them all.
	placeStart := time.Now()
	type placed struct {
		id, customer string
	}
	orders := make([]placed, mpOrders)
	var (
		next     atomic.Int64
		done     atomic.Int64
		errMu    sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range mpParallelism {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= mpOrders {
					return
				}
				customer := fmt.Sprintf("customer-%04d", i)
				sku := []string{"book", "pen"}[i%2]
				id, err := postOrder(client, base, fmt.Sprintf(`{"customer":%q,"items":[{"sku":%q,"qty":1}]}`, customer, sku))
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("order %d: %w", i, err)
					}
					errMu.Unlock()
					next.Store(mpOrders) // stop the other workers
					return
				}
				orders[i] = placed{id, customer}
				if n := done.Add(1); n%250 == 0 {
					t.Logf("placed %d orders", n)
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		fail("placing orders: %v", firstErr)
	}
	placeTook := time.Since(placeStart)
	t.Logf("placed %d orders over HTTP in %s (%.0f/s)", mpOrders, placeTook.Round(time.Millisecond), mpOrders/placeTook.Seconds())

	// Wait until the read model has every order notified.
	var list orderList
	getList := func() bool {
		l, err := getOrderList(client, base)
		if err != nil {
			t.Logf("GET /orders: %v", err)
			return false
		}
		list = l
		return l.ByStatus["notified"] >= mpOrders
	}
	wait(fmt.Sprintf("%d orders to be notified", mpOrders), 90*time.Second, getList, func() {
		t.Logf("read model: %d orders, by status %v", list.Count, list.ByStatus)
	})
	flowTook := time.Since(placeStart)
	t.Logf("all %d orders notified %s after the first POST", mpOrders, flowTook.Round(time.Millisecond))

	// Every order's timeline: one event of each type, in causal order, one
	// correlation id, each published by its service. The read model gets
	// each step on its own subscription, so an order can be notified
	// before its order_shipped is applied (a clean-clone CI run on RabbitMQ
	// had 14 such orders): a timeline may take a moment to complete.
	ids := make(map[string]bool, mpOrders)
	bad := 0
	complete := time.Now().Add(30 * time.Second)
	for _, o := range orders {
		if ids[o.id] {
			fail("order id %s given twice", o.id)
		}
		ids[o.id] = true
		err := checkOrder(client, base, ns, o.id, o.customer)
		for err != nil && time.Now().Before(complete) {
			time.Sleep(20 * time.Millisecond)
			err = checkOrder(client, base, ns, o.id, o.customer)
		}
		if err != nil {
			if bad++; bad <= 10 {
				t.Errorf("order %s: %v", o.id, err)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d orders have a wrong timeline", bad, mpOrders)
	}
	if !getList() || list.Count != mpOrders || list.ByStatus["notified"] != mpOrders {
		t.Errorf("read model lists %d orders, by status %v; want exactly %d, all notified", list.Count, list.ByStatus, mpOrders)
	}

	// Each later service did its part for every order, in its own process.
	effects := countEffects(procs)
	for _, e := range effects {
		missing := 0
		for id := range ids {
			if e.per[id] == 0 {
				missing++
			}
		}
		if missing > 0 || len(e.per) != mpOrders {
			t.Errorf("%s: logged for %d orders, %d of ours missing", e.what, len(e.per), missing)
		}
	}

	dead, err := b.deadLetters(t, url, ns)
	if err != nil {
		t.Errorf("counting dead letters: %v", err)
	}
	if dead != 0 {
		t.Errorf("%d dead letters, want none", dead)
	}

	// Stop every process as a user would, and expect each to exit cleanly.
	client.CloseIdleConnections()
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
	}
	for _, p := range procs {
		select {
		case <-p.exited:
			if p.waitErr != nil {
				t.Errorf("process %s exited with %v after SIGTERM, want status 0\n%s", p.services, p.waitErr, p.tail(20))
			}
		case <-time.After(30 * time.Second):
			t.Errorf("process %s did not exit within 30s of SIGTERM\n%s", p.services, p.tail(20))
		}
	}
	warnings := 0
	for _, p := range procs {
		for line := range strings.Lines(p.out.String()) {
			if strings.Contains(line, "WARN") || strings.Contains(line, "ERROR") {
				if warnings++; warnings <= 5 {
					t.Logf("process %s: %s", p.services, strings.TrimSpace(line))
				}
			}
		}
	}

	var eff []string
	for _, e := range effects {
		eff = append(eff, fmt.Sprintf("%s %d (repeated %d)", e.what, len(e.per), e.repeats()))
	}
	t.Logf("%s: sent %d orders, notified %d, read model ignored %d duplicate deliveries (%d broker redeliveries), "+
		"dead letters %d, warnings in logs %d; service effects: %s; placing took %s, whole flow %s, test %s",
		b.name, mpOrders, list.ByStatus["notified"], list.Duplicates, list.Redeliveries, dead, warnings,
		strings.Join(eff, ", "), placeTook.Round(time.Millisecond), flowTook.Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond))
}

func processList(procs []*shopProcess) string {
	var s []string
	for _, p := range procs {
		s = append(s, fmt.Sprintf("[%s] pid %d", p.services, p.cmd.Process.Pid))
	}
	return strings.Join(s, ", ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return hex.EncodeToString(b)
}

// postOrder places one order and returns its id.
func postOrder(client *http.Client, base, body string) (string, error) {
	resp, err := client.Post(base+"/orders", "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST /orders: %s: %s", resp.Status, b)
	}
	var p struct{ ID string }
	if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
		return "", fmt.Errorf("POST /orders: answer %s (%v)", b, err)
	}
	return p.ID, nil
}

// orderList is the part of GET /orders the test reads.
type orderList struct {
	Count        int            `json:"count"`
	ByStatus     map[string]int `json:"by_status"`
	Duplicates   int            `json:"duplicates_ignored"`
	Redeliveries int            `json:"redeliveries"`
}

func getOrderList(client *http.Client, base string) (orderList, error) {
	var l orderList
	err := getJSON(client, base+"/orders", &l)
	return l, err
}

func getJSON(client *http.Client, url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// checkOrder checks that order id is notified and that its timeline holds
// exactly one event of each step, chained by causation ids.
func checkOrder(client *http.Client, base, ns, id, customer string) error {
	var o struct {
		Customer string
		Status   string
		Events   []struct {
			Type          string `json:"type"`
			ID            string `json:"id"`
			CausationID   string `json:"causation_id"`
			CorrelationID string `json:"correlation_id"`
			Source        string `json:"source"`
		}
	}
	if err := getJSON(client, base+"/orders/"+id, &o); err != nil {
		return err
	}
	var problems []string
	if o.Status != "notified" || o.Customer != customer {
		problems = append(problems, fmt.Sprintf("status %q for %q, want notified for %q", o.Status, o.Customer, customer))
	}
	var types []string
	for _, e := range o.Events {
		types = append(types, e.Type)
	}
	if len(o.Events) != len(wantTimeline) {
		problems = append(problems, fmt.Sprintf("%d events %v, want one of each of the %d steps", len(o.Events), types, len(wantTimeline)))
	} else {
		for i, e := range o.Events {
			want := wantTimeline[i]
			cause := ""
			if i > 0 {
				cause = o.Events[i-1].ID
			}
			switch {
			case e.Type != want.typ:
				problems = append(problems, fmt.Sprintf("event %d is %s, want %s (timeline %v)", i, e.Type, want.typ, types))
			case e.CorrelationID != id:
				problems = append(problems, fmt.Sprintf("%s has correlation id %q", e.Type, e.CorrelationID))
			case e.CausationID != cause:
				problems = append(problems, fmt.Sprintf("%s has causation id %q, want %q: the chain is broken", e.Type, e.CausationID, cause))
			case e.Source != "/"+ns+"/"+want.service:
				problems = append(problems, fmt.Sprintf("%s comes from %q, want /%s/%s", e.Type, e.Source, ns, want.service))
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// effect counts the log lines in which one service did its part, per order.
type effect struct {
	what string
	re   *regexp.Regexp
	per  map[string]int
}

func (e *effect) repeats() int {
	n := 0
	for _, k := range e.per {
		n += k - 1
	}
	return n
}

func countEffects(procs []*shopProcess) []*effect {
	effects := []*effect{
		{what: "charges", re: regexp.MustCompile(`payment: charged order ([0-9a-f]+) `)},
		{what: "reservations", re: regexp.MustCompile(`inventory: reserved .* for order ([0-9a-f]+) `)},
		{what: "shipments", re: regexp.MustCompile(`shipping: order ([0-9a-f]+) goes with`)},
		{what: "mails", re: regexp.MustCompile(`notification: emailed .* that order ([0-9a-f]+) is`)},
	}
	for _, e := range effects {
		e.per = make(map[string]int)
	}
	for _, p := range procs {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			for _, e := range effects {
				if m := e.re.FindStringSubmatch(sc.Text()); m != nil {
					e.per[m[1]]++
				}
			}
		}
	}
	return effects
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
