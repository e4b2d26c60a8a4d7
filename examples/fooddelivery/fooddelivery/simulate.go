package fooddelivery

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-go/troupe/examples/fooddelivery/notification"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
)

// Simulation says how [Simulate] drives a running app.
type Simulation struct {
	// BaseURL is where the order service serves HTTP ("http://127.0.0.1:8080").
	// Required.
	BaseURL string
	// LedgerURL is where the payment service serves GET /ledger. Default
	// BaseURL; "off" leaves the money out of the report.
	LedgerURL string
	// NotificationsURL is where the notification service serves GET
	// /notifications. Default BaseURL; "off" leaves the messages out.
	NotificationsURL string
	// Resume, when not empty, is a file that keeps the run's id (and the
	// books before it) until the run's report is written. A simulation of
	// as many orders that finds the file continues that run: it sends the
	// orders again with the same Idempotency-Keys and bodies, so those
	// placed before (by a process that was killed, say) are answered from
	// the order service's records, placed once, and counted in the
	// report. Default "": a new run each time.
	Resume string
	// Orders is how many orders to place. Required, at least 1.
	Orders int
	// Concurrency is how many POSTs are in flight at once. Default 16.
	Concurrency int
	// Rate caps the orders placed per second. Default 0: as fast as the
	// app takes them.
	Rate float64
	// Timeout bounds the wait for every order to reach a terminal state
	// after the last one is placed. Default 2 minutes.
	Timeout time.Duration
	// Progress, when not nil, gets a line about once a second.
	Progress io.Writer
	// RetryFor is how long an order is sent again, with the same
	// Idempotency-Key, while the order service does not answer or answers
	// 5xx (a process restarting). Default 1 minute.
	RetryFor time.Duration
	// Client sends the requests. Default: a client with a 10s timeout.
	Client *http.Client
}

// Report is what came of a simulation, read back from the app's own
// routes: the order service's read model and the payment service's ledger.
type Report struct {
	// Run identifies the run: its orders' Idempotency-Keys are
	// "sim-<run>-<n>". Resumed is set when the run began in an earlier
	// simulation (see Simulation.Resume).
	Run       string `json:"run"`
	Resumed   bool   `json:"resumed,omitempty"`
	Placed    int    `json:"placed"`
	Assigned  int    `json:"assigned"`  // confirmed, and a courier assigned
	Refunded  int    `json:"refunded"`  // cancelled, and the charge reversed
	Cancelled int    `json:"cancelled"` // cancelled, refund not yet seen
	// Stuck counts orders without a terminal state (Cancelled included).
	Stuck     int `json:"stuck"`
	Conflicts int `json:"conflicts"`
	// ConfirmedCents is the value of the orders the restaurants confirmed,
	// from the read model.
	ConfirmedCents int64 `json:"confirmed_cents"`
	// Ledger is the change of the payment service's books during the run;
	// nil when LedgerURL is "off" or unreachable.
	Ledger *payment.Books `json:"ledger,omitempty"`
	// Told is what the notification service sent, over all orders (no
	// messages listed); nil when NotificationsURL is "off" or unreachable.
	Told *notification.Sent `json:"told,omitempty"`
	// Took is from the first POST until every order was terminal or the
	// wait gave up.
	Took time.Duration `json:"took"`
	// IDs are the ids of the orders placed, in the order placed.
	IDs []string `json:"-"`
}

// Balanced reports whether the money reconciles: every cent charged was
// either confirmed or reversed, and no order was charged or refunded twice.
func (r Report) Balanced() bool {
	return r.Ledger != nil && r.Ledger.ChargedCents == r.ConfirmedCents+r.Ledger.RefundedCents &&
		r.Ledger.OrdersChargedTwice == 0 && r.Ledger.OrdersRefundedTwice == 0
}

// OK reports whether every order ended in exactly one terminal state, the
// money reconciles, and no customer was told the same thing twice (when
// the messages were read).
func (r Report) OK() bool {
	return r.Stuck == 0 && r.Conflicts == 0 && r.Assigned+r.Refunded == r.Placed && r.Balanced() &&
		(r.Told == nil || r.Told.SentTwice == 0)
}

// WriteTable writes the reconciliation table.
func (r Report) WriteTable(w io.Writer) {
	row := func(label string, v any, note string) { fmt.Fprintf(w, "  %-34s %16v  %s\n", label, v, note) }
	resumed := ""
	if r.Resumed {
		resumed = ", resumed after a restart"
	}
	fmt.Fprintf(w, "reconciliation of run %s after %s%s\n", r.Run, r.Took.Round(time.Millisecond), resumed)
	row("orders placed", r.Placed, "")
	row("confirmed (courier assigned)", r.Assigned, "")
	row("cancelled (compensated: refunded)", r.Refunded, "")
	row("stuck (no terminal state)", r.Stuck, stuckNote(r))
	row("both outcomes (conflict)", r.Conflicts, "")
	if r.Told != nil {
		row("customers told a thing twice", r.Told.SentTwice, fmt.Sprintf("(%d repeated requests to the messenger sent nothing)", r.Told.Suppressed))
	}
	if r.Ledger == nil {
		row("money", "n/a", "(the payment service's ledger was not reachable)")
		return
	}
	l := r.Ledger
	row("charged", order.FormatCents(l.ChargedCents), fmt.Sprintf("%d charges, %d orders charged twice", l.Charges, l.OrdersChargedTwice))
	row("confirmed", order.FormatCents(r.ConfirmedCents), "")
	row("reversed", order.FormatCents(l.RefundedCents), fmt.Sprintf("%d refunds, %d orders refunded twice", l.Refunds, l.OrdersRefundedTwice))
	verdict := "yes"
	if !r.Balanced() {
		verdict = fmt.Sprintf("NO: off by %s", order.FormatCents(l.ChargedCents-r.ConfirmedCents-l.RefundedCents))
	}
	row("charged = confirmed + reversed", verdict, "")
	row("retries that moved no money", l.RepeatedRequests, fmt.Sprintf("(%d simulated crashes after moving money)", l.SimulatedCrashes))
}

func stuckNote(r Report) string {
	if r.Cancelled > 0 {
		return fmt.Sprintf("(%d cancelled, refund pending)", r.Cancelled)
	}
	return ""
}

// menus are the simulated restaurants and their dishes, in euro cents.
var menus = map[string][]order.Item{
	"napoli":     {{Name: "margherita", PriceCents: 950}, {Name: "diavola", PriceCents: 1150}, {Name: "tiramisu", PriceCents: 600}},
	"sakura":     {{Name: "ramen", PriceCents: 1400}, {Name: "gyoza", PriceCents: 650}, {Name: "mochi", PriceCents: 450}},
	"taqueria":   {{Name: "tacos", PriceCents: 890}, {Name: "burrito", PriceCents: 1090}, {Name: "churros", PriceCents: 500}},
	"green-bowl": {{Name: "falafel bowl", PriceCents: 1250}, {Name: "lemonade", PriceCents: 350}},
}

var customers = []string{"ada", "alan", "barbara", "edsger", "frances", "grace", "john", "katherine", "radia", "tim"}

// randomOrder returns the JSON body of a plausible order.
func randomOrder(rng *mrand.Rand) []byte {
	names := []string{"napoli", "sakura", "taqueria", "green-bowl"}
	r := names[rng.IntN(len(names))]
	menu := menus[r]
	var items []order.Item
	for _, i := range rng.Perm(len(menu))[:1+rng.IntN(len(menu))] {
		it := menu[i]
		it.Qty = 1 + rng.IntN(3)
		items = append(items, it)
	}
	b, _ := json.Marshal(map[string]any{"customer": customers[rng.IntN(len(customers))], "restaurant": r, "items": items})
	return b
}

// Simulate places s.Orders generated orders through the order service's
// HTTP API, each with an Idempotency-Key of its run and number, waits
// until each has reached a terminal state (or s.Timeout passes), and
// reports what the app's own routes say became of them, of the money and
// of the messages. It fails when the app cannot be reached or refuses an
// order; a run that ends with stuck orders or unbalanced money is not an
// error: the report says so (see [Report.OK]).
func Simulate(ctx context.Context, s Simulation) (Report, error) {
	if s.BaseURL == "" || s.Orders < 1 {
		return Report{}, errors.New("simulate: need the order service's base URL and at least 1 order")
	}
	if s.LedgerURL == "" {
		s.LedgerURL = s.BaseURL
	}
	if s.NotificationsURL == "" {
		s.NotificationsURL = s.BaseURL
	}
	if s.Concurrency < 1 {
		s.Concurrency = 16
	}
	if s.Timeout <= 0 {
		s.Timeout = 2 * time.Minute
	}
	if s.RetryFor <= 0 {
		s.RetryFor = time.Minute
	}
	if s.Client == nil {
		s.Client = &http.Client{Timeout: 10 * time.Second}
	}
	c := simClient{s: s}
	run, resumed, err := c.begin()
	if err != nil {
		return Report{}, err
	}
	if resumed && s.Progress != nil {
		fmt.Fprintf(s.Progress, "simulate: resuming run %s of %d orders, begun %s: its orders go again with the same keys, and those placed before are placed once\n",
			run.Run, run.Orders, run.Started.Local().Format(time.DateTime))
	}

	start := time.Now()
	ids := make([]string, s.Orders)
	var (
		next, placed atomic.Int64
		errOnce      sync.Once
		placeErr     error
		wg           sync.WaitGroup
	)
	var tick <-chan time.Time
	if s.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / s.Rate))
		defer t.Stop()
		tick = t.C
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seed := run.seed()
	for range s.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= s.Orders || pctx.Err() != nil {
					return
				}
				if tick != nil {
					select {
					case <-tick:
					case <-pctx.Done():
						return
					}
				}
				// The body is a function of the run and the number, so a
				// resumed run sends each key with the same order.
				body := randomOrder(mrand.New(mrand.NewPCG(seed, uint64(i))))
				id, err := c.place(pctx, run.key(i), body)
				if err != nil {
					errOnce.Do(func() { placeErr = fmt.Errorf("simulate: order %d: %w", i+1, err); cancel() })
					return
				}
				ids[i] = id
				placed.Add(1)
			}
		})
	}
	// Progress while placing.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
placing:
	for {
		select {
		case <-done:
			break placing
		case <-progress.C:
			c.progress(placed.Load())
		}
	}
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	if placeErr != nil {
		return Report{}, placeErr
	}

	// Wait for every order to reach a terminal state. Reading every order
	// is heavy, so the loop reads the totals and reads the orders only when
	// nothing is stuck there, or every few seconds in case orders placed by
	// others stay stuck.
	deadline := time.Now().Add(s.Timeout)
	var r Report
	for i := 0; ; i++ {
		var totals order.List
		if i%20 != 0 && c.get(c.s.BaseURL+"/orders?limit=1", &totals) == nil && totals.Stuck > 0 && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return r, ctx.Err()
			case <-progress.C:
				c.progress(int64(s.Orders))
			case <-time.After(100 * time.Millisecond): // poll interval
			}
			continue
		}
		r, err = c.report(ids)
		if err == nil && r.Stuck == 0 {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				return r, err
			}
			break
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-progress.C:
			c.progress(int64(s.Orders))
		case <-time.After(100 * time.Millisecond): // poll interval
		}
	}
	r.Run, r.Resumed = run.Run, resumed
	r.Took = time.Since(start)
	if run.Before != nil {
		if after, err := c.books(); err == nil {
			d := diffBooks(after, *run.Before)
			r.Ledger = &d
		}
	}
	if s.NotificationsURL != "off" && len(ids) > 0 {
		var told notification.Sent
		if c.get(s.NotificationsURL+"/notifications?order="+ids[0], &told) == nil {
			told.Messages, told.Count = nil, 0
			r.Told = &told
		}
	}
	if s.Resume != "" {
		// The run is over: the next simulation is a new one.
		if err := os.Remove(s.Resume); err != nil && !errors.Is(err, os.ErrNotExist) {
			return r, fmt.Errorf("simulate: %w", err)
		}
	}
	return r, nil
}

// simRun is one simulation run, as Simulation.Resume keeps it.
type simRun struct {
	Run     string    `json:"run"`
	Orders  int       `json:"orders"`
	Started time.Time `json:"started"`
	// Before is the payment service's books before the run's first order.
	Before *payment.Books `json:"books_before,omitempty"`
}

// key is the Idempotency-Key of the run's order i (from 0).
func (r simRun) key(i int) string { return fmt.Sprintf("sim-%s-%d", r.Run, i+1) }

// seed is the seed of the run's order bodies.
func (r simRun) seed() uint64 {
	sum := sha256.Sum256([]byte(r.Run))
	return binary.BigEndian.Uint64(sum[:8])
}

// begin reads the run to resume, or begins a new one (and keeps it in
// s.Resume, if set).
func (c *simClient) begin() (simRun, bool, error) {
	if c.s.Resume != "" {
		var run simRun
		b, err := os.ReadFile(c.s.Resume)
		switch {
		case err == nil && json.Unmarshal(b, &run) == nil && run.Run != "" && run.Orders == c.s.Orders:
			return run, true, nil
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return simRun{}, false, fmt.Errorf("simulate: %w", err)
		}
		// No run to resume, or one of another size: a new run.
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	run := simRun{Run: hex.EncodeToString(b), Orders: c.s.Orders, Started: time.Now().UTC()}
	if c.s.LedgerURL != "off" {
		if b, err := c.books(); err == nil {
			run.Before = &b
		} else if c.s.Progress != nil {
			fmt.Fprintf(c.s.Progress, "simulate: no ledger at %s (%v); the report leaves the money out\n", c.s.LedgerURL, err)
		}
	}
	if c.s.Resume != "" {
		b, err := json.Marshal(run)
		if err == nil {
			err = writeFile(c.s.Resume, b)
		}
		if err != nil {
			return simRun{}, false, fmt.Errorf("simulate: keep the run to resume: %w", err)
		}
	}
	return run, false, nil
}

// writeFile writes b to path whole or not at all: a kill while writing
// leaves the old file.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	return err
}

type simClient struct {
	s    Simulation
	last string
}

// place sends order body with key until the order service takes it (or
// answers it took it before), retrying what a restarting service answers
// for s.RetryFor.
func (c *simClient) place(ctx context.Context, key string, body []byte) (string, error) {
	deadline := time.Now().Add(c.s.RetryFor)
	wait := 50 * time.Millisecond
	for {
		id, retry, err := c.placeOnce(ctx, key, body)
		if err == nil || !retry || time.Now().After(deadline) {
			return id, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// placeOnce sends the order once; retry says whether to send it again.
func (c *simClient) placeOnce(ctx context.Context, key string, body []byte) (id string, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.s.BaseURL+"/orders", strings.NewReader(string(body)))
	if err != nil {
		return "", false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.s.Client.Do(req)
	if err != nil {
		return "", ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", true, err
	}
	var a order.Accepted
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &a) != nil || a.ID == "" {
		return "", resp.StatusCode >= 500, fmt.Errorf("POST /orders: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return a.ID, false, nil
}

func (c *simClient) get(url string, v any) error {
	resp, err := c.s.Client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}

func (c *simClient) books() (payment.Books, error) {
	var b payment.Books
	err := c.get(c.s.LedgerURL+"/ledger", &b)
	return b, err
}

// listLimit is the most orders GET /orders lists; a simulation of more
// reads the totals instead of each order.
const listLimit = 10_000

// report reads what became of the orders ids.
func (c *simClient) report(ids []string) (Report, error) {
	r := Report{Placed: len(ids), IDs: ids}
	if len(ids) > listLimit {
		// Too many to list: count from the totals, which include orders
		// placed by others while the simulation ran.
		var l order.List
		if err := c.get(c.s.BaseURL+"/orders?limit=1", &l); err != nil {
			return r, err
		}
		r.Assigned, r.Refunded, r.Cancelled = l.ByStatus[string(order.StatusAssigned)], l.ByStatus[string(order.StatusRefunded)], l.ByStatus[string(order.StatusCancelled)]
		r.Stuck, r.Conflicts, r.ConfirmedCents = l.Stuck, l.Conflicts, l.ConfirmedCents
		return r, nil
	}
	var l order.List
	if err := c.get(fmt.Sprintf("%s/orders?limit=%d", c.s.BaseURL, listLimit), &l); err != nil {
		return r, err
	}
	byID := make(map[string]order.Summary, len(l.Orders))
	for _, o := range l.Orders {
		byID[o.ID] = o
	}
	for _, id := range ids {
		o, ok := byID[id]
		switch {
		case !ok:
			r.Stuck++
		case o.Status == order.StatusAssigned:
			r.Assigned++
			r.ConfirmedCents += o.TotalCents
		case o.Status == order.StatusRefunded:
			r.Refunded++
		default:
			r.Stuck++
			if o.Status == order.StatusCancelled {
				r.Cancelled++
			}
			if o.Status == order.StatusConfirmed {
				r.ConfirmedCents += o.TotalCents
			}
		}
	}
	r.Conflicts = l.Conflicts
	return r, nil
}

func (c *simClient) progress(placed int64) {
	if c.s.Progress == nil {
		return
	}
	var l order.List
	line := fmt.Sprintf("simulate: placed %d/%d", placed, c.s.Orders)
	if err := c.get(c.s.BaseURL+"/orders?limit=1", &l); err == nil {
		line += fmt.Sprintf(" · assigned %d · refunded %d · in flight %d", l.ByStatus[string(order.StatusAssigned)], l.ByStatus[string(order.StatusRefunded)], l.Stuck)
	}
	if line != c.last {
		fmt.Fprintln(c.s.Progress, line)
		c.last = line
	}
}

// diffBooks returns what changed from b to a; counts of what is wrong
// now (orders charged twice, refunds waiting in dead letters) are a's.
func diffBooks(a, b payment.Books) payment.Books {
	d := a
	d.Charges -= b.Charges
	d.ChargedCents -= b.ChargedCents
	d.Refunds -= b.Refunds
	d.RefundedCents -= b.RefundedCents
	d.NetCents -= b.NetCents
	d.RepeatedRequests -= b.RepeatedRequests
	d.Redeliveries -= b.Redeliveries
	d.OtherEvents -= b.OtherEvents
	d.SimulatedCrashes -= b.SimulatedCrashes
	return d
}
