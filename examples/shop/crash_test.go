//go:build unix

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/internal/messenger"
	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/examples/shop/internal/verify"
	"github.com/troupe-go/troupe/examples/shop/inventory"
	"github.com/troupe-go/troupe/examples/shop/orders"
)

// The crash tests place orders over HTTP while kill -9 hits the shop, and
// then check through the HTTP API only, as a user would, that every order
// that got 201 ended on one of the shop's paths, that none was lost, that
// the money reconciles to the cent and that nobody was told anything twice.

const (
	crashOrders  = 500 // orders placed per run
	crashWorkers = 16  // POSTs in flight at once
	crashKills   = 6   // kill -9s per all-in-one run, at least
)

// crashFlags inject every failure the shop has: declined cards, provider
// answers lost after the money moved (retried), and fewer books than
// orders (refunded).
var crashFlags = []string{"--decline-rate", "0.05", "--fail-rate", "0.1", "--initial-stock", fmt.Sprintf("book=%d", crashBooks)}

// crashBooks is the books on the shelf: fewer than the orders ask for.
const crashBooks = 250

// crashTable collects one row per run of the crash tests in this process;
// each run logs it. Runs are parallel subtests, hence the lock.
var (
	crashTableMu sync.Mutex
	crashTable   = proctest.Table{
		Title:  "shop crash tests (through the HTTP API)",
		Header: []string{"mode", "accepted", "shipped", "cancelled", "refunds", "lost", "double effects", "kills"},
	}
)

// crashRow adds a row to the crash table and logs the table.
func crashRow(t *testing.T, values ...any) {
	crashTableMu.Lock()
	defer crashTableMu.Unlock()
	crashTable.Row(values...)
	crashTable.Log(t)
}

// TestCrashAllInOne runs the whole shop in one process, on SQLite and on
// PostgreSQL, and kills it with SIGKILL at random moments while orders
// arrive and flow, restarting it each time on the same data.
func TestCrashAllInOne(t *testing.T) {
	bin := buildProgram(t)
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			// Much of a run is waiting for the broker to hand the events a
			// killed process held to the next one (their lease, 30s): the
			// two runs wait side by side.
			t.Parallel()
			ns := "shopcrash_" + randomHex(4)
			args := append([]string{"--data", t.TempDir()}, crashFlags...)
			if db == "postgres" {
				args = append(args, "--db", storetest.Postgres(t, ns).URL)
			}
			addr := proctest.FreeAddr(t)
			base := "http://" + addr
			args = append(args, "--http", addr)
			c := proctest.StartCrashing(t, "shop", bin, []string{"SHOP_APP_NAME=" + ns},
				func(*proctest.Process) bool { return proctest.Healthy(base) }, args...)
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(proctest.Tail(c.Output(), 60))
				}
			})

			ld := startLoad(base, ns, crashOrders)
			killWhileFlowing(t, ld, c.KillAndRestart, c.Kills)
			ld.wait(t)
			row := settleAndCheck(t, ld, shopURLs{orders: base, ledger: base, stock: base, notifications: base}, ns)
			crashRow(t, append([]any{"all-in-one " + db}, append(row, c.Kills())...)...)
			c.Stop(t)
		})
	}
}

// killWhileFlowing kills (and restarts) at random moments while the load
// places orders, each time once a random number of orders (20 to 100)
// got through since the last kill, so that every life makes progress
// however slow the machine; and then at random moments while the orders
// flow, at least twice, until crashKills kills were made in all.
func killWhileFlowing(t *testing.T, ld *load, killAndRestart func(testing.TB), kills func() int) {
	t.Helper()
	after := 0
	for !ld.finished() || kills() < crashKills || after < 2 {
		if !ld.finished() {
			target := ld.accepted.Load() + 20 + int64(randomDuration(0, 80))
			for !ld.finished() && ld.accepted.Load() < target {
				time.Sleep(10 * time.Millisecond) // poll interval
			}
		}
		if ld.finished() {
			after++
			time.Sleep(randomDuration(100*time.Millisecond, 700*time.Millisecond))
		}
		killAndRestart(t)
	}
}

// shopURLs are where the shop's services answer: one base URL when they
// run in one process.
type shopURLs struct{ orders, ledger, stock, notifications string }

// load places orders over HTTP with an Idempotency-Key each, retrying
// through kills until each gets 201, crashWorkers at a time. Every third
// order is a pen, the others a book: more books than the stock holds.
type load struct {
	n        int
	ids      []string // the id each order got, by index
	next     atomic.Int64
	posts    atomic.Int64 // POSTs sent, retries included
	accepted atomic.Int64 // orders that got 201
	done     chan struct{}
	mu       sync.Mutex
	errors   []string
}

func startLoad(base, prefix string, n int) *load {
	ld := &load{n: n, ids: make([]string, n), done: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range crashWorkers {
		wg.Go(func() {
			for {
				i := int(ld.next.Add(1) - 1)
				if i >= n {
					return
				}
				body := fmt.Sprintf(`{"customer":"customer-%04d","items":[{"sku":%q,"qty":1}]}`, i, ld.sku(i))
				id, err := ld.place(client, base, fmt.Sprintf("%s-%d", prefix, i), body)
				if err != nil {
					ld.fail("order %d: %v", i, err)
					continue
				}
				ld.ids[i] = id
				ld.accepted.Add(1)
			}
		})
	}
	go func() { wg.Wait(); client.CloseIdleConnections(); close(ld.done) }()
	return ld
}

// place posts one order until it is accepted: a refused connection, a
// reset or a 503 mean the shop is restarting. Any other answer is final.
func (ld *load) place(client *http.Client, base, key, body string) (string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ld.posts.Add(1)
		req, _ := http.NewRequest("POST", base+"/orders", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case rerr != nil:
			case resp.StatusCode == http.StatusCreated:
				var p struct{ ID string }
				if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
					return "", fmt.Errorf("201 with %s", b)
				}
				return p.ID, nil
			case resp.StatusCode != http.StatusServiceUnavailable:
				return "", fmt.Errorf("%s: %s", resp.Status, b)
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("not accepted within 2 minutes (last error %v)", err)
		}
		time.Sleep(20 * time.Millisecond) // the shop is restarting
	}
}

// sku is what order i asks for: a pen every third order, a book otherwise.
func (ld *load) sku(i int) string {
	if i%3 == 2 {
		return "pen"
	}
	return "book"
}

func (ld *load) fail(format string, args ...any) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ld.errors = append(ld.errors, fmt.Sprintf(format, args...))
}

func (ld *load) finished() bool {
	select {
	case <-ld.done:
		return true
	default:
		return false
	}
}

// wait waits for the load to end and fails the test on any order that was
// not accepted.
func (ld *load) wait(t *testing.T) {
	t.Helper()
	<-ld.done
	for i, e := range ld.errors {
		if i == 10 {
			t.Errorf("… and %d more", len(ld.errors)-10)
			break
		}
		t.Error(e)
	}
	if len(ld.errors) > 0 {
		t.FailNow()
	}
}

// settleAndCheck waits until the shop is idle with every accepted order
// terminal, then checks each order and the books through the API. It
// returns the row's values: accepted, shipped, cancelled, refunds, lost,
// double effects.
func settleAndCheck(t *testing.T, ld *load, urls shopURLs, app string) []any {
	t.Helper()
	var l orders.List
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := getJSON(urls.orders+"/orders", &l)
		if err == nil && l.Count >= ld.n && l.Settled() {
			break
		}
		if time.Now().After(deadline) {
			// Go on: the checks below say which orders are lost or unfinished.
			t.Errorf("the orders did not settle within 2 minutes: %d orders, %d terminal, %d stuck, %v (%v)", l.Count, l.Terminal, l.Stuck, l.ByStatus, err)
			break
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	lost, bad, booksShipped := 0, 0, 0
	paths := map[string]int{}
	pending := map[int]error{} // orders whose timeline is not whole yet
	seen := map[string]bool{}
	for i, id := range ld.ids {
		if seen[id] {
			t.Errorf("order %d got id %s, given before", i, id)
		}
		seen[id] = true
		pending[i] = nil
	}
	// An order can be terminal before its timeline is whole: the read
	// model hears each step on a subscription of its own, and the events a
	// killed process held come back only when their lease (30s) runs out.
	deadline = time.Now().Add(time.Minute)
	for len(pending) > 0 {
		for i := range pending {
			var o orders.Order
			if err := getJSON(urls.orders+"/orders/"+ld.ids[i], &o); err != nil {
				if lost++; lost <= 5 {
					t.Errorf("accepted order %d (%s) is lost: %v", i, ld.ids[i], err)
				}
				delete(pending, i)
				continue
			}
			name, err := verify.Ended(o, app)
			if err != nil {
				pending[i] = err
				continue
			}
			delete(pending, i)
			paths[name]++
			if name == "shipped" && ld.sku(i) == "book" {
				booksShipped++
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	for _, err := range pending {
		if bad++; bad <= 5 {
			t.Error(err)
		}
	}
	var b gateway.Books
	var m messenger.Stats
	if err := getJSON(urls.ledger+"/ledger", &b); err != nil {
		t.Fatal(err)
	}
	if err := getJSON(urls.notifications+"/notifications", &m); err != nil {
		t.Fatal(err)
	}
	var stock inventory.Levels
	if err := getJSON(urls.stock+"/stock", &stock); err != nil {
		t.Fatal(err)
	}
	for _, lv := range stock.Stock {
		if lv.SKU == "book" && (lv.OnShelf+lv.Reserved != crashBooks || lv.Reserved != int64(booksShipped)) {
			t.Errorf("books: %d on the shelf and %d reserved, for %d shipped out of %d", lv.OnShelf, lv.Reserved, booksShipped, crashBooks)
		}
	}
	if l.Count != ld.n {
		t.Errorf("GET /orders counts %d orders, %d were accepted: a retried POST placed another", l.Count, ld.n)
	}
	for _, p := range verify.Reconcile(l, b, m) {
		t.Error(p)
	}
	if bad > 0 || lost > 0 {
		t.Errorf("%d orders lost, %d on no path", lost, bad)
	}
	if paths["shipped"] == 0 || paths["out of stock"] == 0 || paths["declined"] == 0 {
		t.Errorf("paths %v: want orders shipped, out of stock and declined", paths)
	}
	t.Logf("%d POSTs for %d orders; paths %v; books %+v; messages %+v; read model ignored %d duplicates (%d redeliveries)",
		ld.posts.Load(), ld.n, paths, b, m, l.Duplicates, l.Redeliveries)
	double := b.OrdersChargedTwice + b.OrdersRefundedTwice + m.SentTwice
	return []any{ld.n, l.ByStatus["notified"], l.ByStatus["cancelled"], b.Refunds, lost, double}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return hex.EncodeToString(b)
}

func randomDuration(lo, hi time.Duration) time.Duration {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(hi-lo)))
	return lo + time.Duration(n.Int64())
}
