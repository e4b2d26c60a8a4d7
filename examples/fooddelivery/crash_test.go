//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/fooddelivery/loyalty"
	"github.com/troupe-go/troupe/examples/fooddelivery/notification"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/proctest"
)

// The crash tests kill the program with SIGKILL at moments of their
// choosing while orders flow, start it again on the same data, and then
// check through the HTTP API alone, as a user would, that every accepted
// order ended in exactly one terminal state, that the money reconciles to
// the cent, and that nobody was told or credited anything twice.

const (
	crashFailureRate = 0.3
	crashCrashRate   = 0.05
	// crashSimulated is how many orders the --simulate run places, and
	// crashLoad how many the load generator places afterwards.
	crashSimulated = 300
	crashLoad      = 500
)

// TestCrashAllInOne runs every service in one process on the embedded
// broker and SQLite, in two acts. First --simulate, killed twice mid-run
// and started again with the same arguments: the last life resumes the run
// (same Idempotency-Keys, so nothing is placed twice), waits for every
// order and exits 0 with a table that reconciles. Then the server, killed
// at least three more times while a load generator places orders
// concurrently, retrying each through the kills with its Idempotency-Key.
func TestCrashAllInOne(t *testing.T) {
	bin := buildProgram(t)
	// The crash tests mostly wait for the broker to hand a killed
	// process's events on: they wait side by side.
	t.Parallel()
	began := time.Now()
	addr := proctest.FreeAddr(t)
	base := "http://" + addr
	args := []string{"--http", addr, "--data", t.TempDir(), "--log-format", "text", "--log-level", "warn",
		"--restaurant-failure-rate", fmt.Sprint(crashFailureRate), "--payment-crash-rate", fmt.Sprint(crashCrashRate)}
	ready := func(*proctest.Process) bool { return proctest.Healthy(base) }
	c := crashClient{orders: base, ledger: base, notifications: base, loyalty: base}

	// Act 1: --simulate, killed when it has placed some orders.
	sim := proctest.StartCrashing(t, "fooddelivery --simulate", bin, nil, ready, append(args, "--simulate", fmt.Sprint(crashSimulated))...)
	for range 2 {
		c.waitForMore(t, sim.Current(), 20+rand.IntN(60), nil)
		sim.KillAndRestart(t)
	}
	last := sim.Current()
	select {
	case <-last.Done():
	case <-time.After(3 * time.Minute):
		t.Fatalf("the resumed --simulate did not end within 3 minutes:\n%s", proctest.Tail(last.Out.String(), 30))
	}
	out := last.Out.String()
	if err := last.Err(); err != nil {
		t.Fatalf("the resumed --simulate exited with %v:\n%s", err, sim.Output())
	}
	for _, want := range []string{"resumed after a restart", "charged = confirmed + reversed                  yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("the last --simulate's output lacks %q:\n%s", want, out)
		}
	}
	if f := tableField(out, "orders placed"); f != fmt.Sprint(crashSimulated) {
		t.Errorf("the table says %s orders placed, want %d:\n%s", f, crashSimulated, out)
	}
	if f := tableField(out, "stuck (no terminal state)"); f != "0" {
		t.Errorf("the table says %s orders stuck, want 0", f)
	}
	if i := strings.Index(out, "reconciliation of run"); i >= 0 {
		t.Logf("--simulate %d, killed twice, resumed:\n%s", crashSimulated, out[i:])
	}
	simKills := sim.Kills()

	// Act 2: the server under load, killed at random moments.
	srv := proctest.StartCrashing(t, "fooddelivery", bin, nil, ready, args...)
	gen := c.load(crashLoad, "crash")
	for range 3 {
		c.waitForMore(t, srv.Current(), 60+rand.IntN(80), gen.failed)
		srv.KillAndRestart(t)
	}
	accepted := gen.wait(t)
	c.waitSettled(t, srv.Current(), crashSimulated+crashLoad)
	kills := simKills + srv.Kills()

	row, problems := c.check(t, accepted, crashSimulated+crashLoad)
	for _, p := range problems {
		t.Error(p)
	}
	if kills < 5 {
		t.Errorf("%d kills, want at least 5", kills)
	}
	table := proctest.Table{Title: "fooddelivery crash test, all in one process",
		Header: []string{"mode", "accepted", "completed", "compensated", "lost", "double effects", "kills", "took"}}
	table.Row(append([]any{"embedded broker, SQLite"}, row.cells(kills, time.Since(began))...)...)
	table.Log(t)
	if t.Failed() {
		t.Logf("output of every life:\n%s\n%s", sim.Output(), srv.Output())
	}
	httpClient.CloseIdleConnections()
	srv.Stop(t)
}

// tableField returns the first value of the reconciliation table's row
// label.
func tableField(out, label string) string {
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// crashClient reads the services' routes, which may live in different
// processes.
type crashClient struct {
	orders, ledger, notifications, loyalty string
}

// totals reads GET /orders?limit=1.
func (c crashClient) totals() (order.List, error) {
	var l order.List
	err := getJSON(c.orders+"/orders?limit=1", &l)
	return l, err
}

// waitForMore waits until the order service holds n more orders than now:
// a moment in the middle of the flow, chosen by how far it got rather
// than by the clock.
func (c crashClient) waitForMore(t *testing.T, p *proctest.Process, n int, failed func() error) {
	t.Helper()
	var l order.List
	waitFor(t, "the order service's totals", 2*time.Minute, func() bool {
		var err error
		l, err = c.totals()
		return err == nil
	}, p)
	c.waitForCount(t, p, l.Count+n, failed)
}

// waitForCount waits until the order service holds n orders. It fails the
// test when failed (if not nil) returns an error first: the load gave up,
// or ended.
func (c crashClient) waitForCount(t *testing.T, p *proctest.Process, n int, failed func() error) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d orders", n), 2*time.Minute, func() bool {
		if failed != nil {
			if err := failed(); err != nil {
				t.Fatalf("the load stopped while waiting for %d orders: %v", n, err)
			}
		}
		l, err := c.totals()
		return err == nil && l.Count >= n
	}, p)
}

// waitSettled waits until the order service holds want orders, none of
// them stuck.
func (c crashClient) waitSettled(t *testing.T, p *proctest.Process, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d orders, all terminal", want), 3*time.Minute, func() bool {
		l, err := c.totals()
		return err == nil && l.Count >= want && l.Stuck == 0
	}, p)
}

// loadGen places orders concurrently in the background, each with an
// Idempotency-Key, retrying it through kills until it is accepted.
type loadGen struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	accepted map[string]string // order id → customer
	errs     []error
}

// load starts placing n orders with keys "<prefix>-<i>", 8 at a time.
func (c crashClient) load(n int, prefix string) *loadGen {
	g := &loadGen{accepted: make(map[string]string)}
	var next atomic.Int64
	customers := []string{"ada", "alan", "barbara", "edsger", "grace", "radia"}
	for range 8 {
		g.wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				customer := customers[i%len(customers)]
				body := fmt.Sprintf(`{"customer":%q,"restaurant":"napoli","items":[{"name":"margherita","qty":%d,"price_cents":950},{"name":"tiramisu","qty":1,"price_cents":%d}]}`,
					customer, 1+i%3, 500+i%200)
				id, err := c.placeRetrying(fmt.Sprintf("%s-%d", prefix, i), body)
				g.mu.Lock()
				if err != nil {
					g.errs = append(g.errs, err)
				} else {
					g.accepted[id] = customer
				}
				g.mu.Unlock()
			}
		})
	}
	return g
}

// failed returns the first order the generator gave up on.
func (g *loadGen) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) > 0 {
		return g.errs[0]
	}
	return nil
}

// wait waits for the generator and returns the accepted orders.
func (g *loadGen) wait(t *testing.T) map[string]string {
	t.Helper()
	g.wg.Wait()
	for _, err := range g.errs {
		t.Error(err)
	}
	return g.accepted
}

// placeRetrying posts an order until the order service accepts it (202),
// for up to two minutes: a process being killed and restarted answers
// nothing, then answers.
func (c crashClient) placeRetrying(key, body string) (string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequest("POST", c.orders+"/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := httpClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var a order.Accepted
			switch {
			case resp.StatusCode == http.StatusAccepted && json.Unmarshal(b, &a) == nil && a.ID != "":
				return a.ID, nil
			case resp.StatusCode < 500:
				return "", fmt.Errorf("POST /orders (key %s): %s: %s", key, resp.Status, b)
			}
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("POST /orders (key %s): still failing after 2 minutes: %v", key, err)
		}
		time.Sleep(50 * time.Millisecond) // a restarting process gives no signal
	}
}

// crashRow is what the checks found, for the table.
type crashRow struct {
	accepted, completed, compensated, lost, double int
}

func (r crashRow) cells(kills int, took time.Duration) []any {
	return []any{r.accepted, r.completed, r.compensated, r.lost, r.double, kills, took.Round(time.Second)}
}

// check reads, through the HTTP API only, what became of every order
// (total: how many the order service must hold, accepted: the ones the
// test placed itself, by id with their customer) and of the money, the
// messages and the points, and returns the table's row and what is wrong.
func (c crashClient) check(t *testing.T, accepted map[string]string, total int) (crashRow, []string) {
	t.Helper()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	row := crashRow{accepted: total}

	// Every order is there once, terminal, on one path.
	var l order.List
	if err := getJSON(fmt.Sprintf("%s/orders?limit=%d", c.orders, 10_000), &l); err != nil {
		t.Fatal(err)
	}
	row.completed = l.ByStatus[string(order.StatusAssigned)]
	row.compensated = l.ByStatus[string(order.StatusRefunded)]
	row.lost = total - row.completed - row.compensated
	row.double = l.Conflicts + max(0, l.Count-total)
	if l.Count != total || l.Stuck != 0 || l.Conflicts != 0 || l.Terminal != total {
		bad("GET /orders: %d orders, %d terminal, %d stuck, %d conflicts; want %d, all terminal", l.Count, l.Terminal, l.Stuck, l.Conflicts, total)
	}
	listed := make(map[string]order.Summary, len(l.Orders))
	for _, o := range l.Orders {
		listed[o.ID] = o
	}
	wrong := 0
	// The read model applies each step on a subscription of its own, so an
	// order can be terminal before an earlier step's event is in its
	// timeline: an incomplete timeline is read again until this deadline.
	deadline := time.Now().Add(time.Minute)
	for id := range accepted {
		var o order.Order
		var ok bool
		fate := restaurant.Decide(id, crashFailureRate, 4).Kind
		for {
			o = order.Order{}
			if err := getJSON(c.orders+"/orders/"+url.PathEscape(id), &o); err != nil {
				break
			}
			ok = o.Terminal && !o.Conflict && len(o.Timeline) == 4
			switch fate {
			case restaurant.Confirm:
				ok = ok && o.Status == order.StatusAssigned
			case restaurant.Reject, restaurant.Down:
				ok = ok && o.Status == order.StatusRefunded
			}
			if ok || len(o.Timeline) >= 4 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond) // poll: the read model gives no signal
		}
		if o.ID == "" {
			bad("accepted order %s: not found", id)
			row.lost++
			continue
		}
		// A flaky restaurant may be compensated: an attempt that died with
		// the process counts, and its last one may be the one that died.
		if !ok {
			if wrong++; wrong <= 10 {
				bad("order %s (fate %s) is %s, terminal %v, conflict %v, %d events", id, fate, o.Status, o.Terminal, o.Conflict, len(o.Timeline))
			}
		}
	}

	// The money: every order charged once, each compensated one refunded
	// once, charged = confirmed + refunded to the cent.
	var b payment.Books
	if err := getJSON(c.ledger+"/ledger", &b); err != nil {
		t.Fatal(err)
	}
	row.double += b.OrdersChargedTwice + b.OrdersRefundedTwice
	if b.Charges != total || b.Refunds != row.compensated || b.OrdersChargedTwice != 0 || b.OrdersRefundedTwice != 0 ||
		b.ChargedCents != l.ConfirmedCents+b.RefundedCents || b.RefundedCents != l.CancelledCents || b.RefundsRefused != 0 {
		bad("GET /ledger: %+v; want %d charges, %d refunds, charged = confirmed %d + refunded, nothing twice", b, total, row.compensated, l.ConfirmedCents)
	}

	// The messages and the points are side effects of events the order
	// service has seen too, handled by other subscriptions: a killed
	// process's share comes back when the broker hands it on (NATS: when
	// its lease runs out, 30s). So they are read until they add up, or a
	// deadline passes.
	var last []string
	deadline = time.Now().Add(90 * time.Second)
	for {
		var double int
		last, double = c.sideEffects(accepted, listed, row)
		if len(last) == 0 || time.Now().After(deadline) {
			row.double += double
			break
		}
		time.Sleep(200 * time.Millisecond) // poll interval: no signal for "handled everywhere"
	}
	problems = append(problems, last...)
	return row, problems
}

// sideEffects reads the messages and the points and returns what does not
// add up, and how many effects happened twice: one message of each kind
// per order, nobody told twice, each assigned order credited once to its
// customer.
func (c crashClient) sideEffects(accepted map[string]string, listed map[string]order.Summary, row crashRow) (problems []string, double int) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var told notification.Sent
	if err := getJSON(c.notifications+"/notifications?customer=ada", &told); err != nil {
		bad("GET /notifications: %v", err)
		return problems, 0
	}
	double += told.SentTwice
	for k, n := range map[notification.Kind]int{
		notification.KindConfirmed: row.completed, notification.KindCourier: row.completed,
		notification.KindCancelled: row.compensated, notification.KindRefunded: row.compensated,
	} {
		if told.AllByKind[k] != n {
			bad("%d %s messages, want %d", told.AllByKind[k], k, n)
		}
	}
	if told.SentTwice != 0 {
		bad("%d customers told the same thing twice", told.SentTwice)
	}

	want := make(map[string]map[string]bool)
	for id, customer := range accepted {
		if listed[id].Status == order.StatusAssigned {
			if want[customer] == nil {
				want[customer] = make(map[string]bool)
			}
			want[customer][id] = true
		}
	}
	for customer, ids := range want {
		var w loyalty.Wallet
		if err := getJSON(c.loyalty+"/loyalty/"+customer, &w); err != nil {
			bad("GET /loyalty/%s: %v", customer, err)
			continue
		}
		seen := make(map[string]bool)
		for _, id := range w.Orders {
			if seen[id] {
				double++
				bad("%s was credited twice for order %s", customer, id)
			}
			seen[id] = true
		}
		for id := range ids {
			if !seen[id] {
				bad("%s has no points for order %s", customer, id)
			}
		}
	}
	return problems, double
}
