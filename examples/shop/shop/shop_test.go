package shop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/examples/shop/payment"
	"github.com/troupe-go/troupe/examples/shop/shop"
	"github.com/troupe-go/troupe/transport"
)

// waitTimeout bounds every wait of these tests; the flow itself takes
// milliseconds.
const waitTimeout = 20 * time.Second

var client = &http.Client{Timeout: 10 * time.Second}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// startShop starts the shop on its own embedded broker and a free port, and
// returns the base URL. declare, if not nil, may add to the app first.
func startShop(t *testing.T, declare func(*troupe.App)) string {
	t.Helper()
	return startShopWith(t, testLogger(), declare)
}

// startShopWith is startShop with a logger and options of its own.
func startShopWith(t *testing.T, log *slog.Logger, declare func(*troupe.App), opts ...shop.Option) string {
	t.Helper()
	app := shop.NewApp(troupe.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Logger: log}, opts...)
	if declare != nil {
		declare(app)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A connection the client dialled but never sent a request on holds
		// the server's graceful shutdown for 5s (see http.Server.Shutdown).
		client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := app.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return "http://" + app.HTTPAddr()
}

// do sends a request and returns the status and body.
func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// placeOrder posts a valid order and returns its id.
func placeOrder(t *testing.T, base, body string) string {
	t.Helper()
	status, b := do(t, "POST", base+"/orders", body)
	if status != http.StatusCreated {
		t.Fatalf("POST /orders: %d %s", status, b)
	}
	var placed struct {
		ID     string            `json:"id"`
		Status string            `json:"status"`
		Links  map[string]string `json:"links"`
	}
	if err := json.Unmarshal(b, &placed); err != nil {
		t.Fatalf("POST /orders: %v in %s", err, b)
	}
	if placed.ID == "" || placed.Status != "placed" || placed.Links["self"] != "/orders/"+placed.ID {
		t.Fatalf("POST /orders answered %s", b)
	}
	return placed.ID
}

// waitFulfilled polls the order until it is notified and its timeline holds
// all five events, and returns it.
func waitFulfilled(t *testing.T, base, id string) orders.Order {
	t.Helper()
	return waitFulfilledWithin(t, base, id, waitTimeout)
}

func waitFulfilledWithin(t *testing.T, base, id string, wait time.Duration) orders.Order {
	t.Helper()
	deadline := time.Now().Add(wait)
	var last []byte
	for {
		status, b := do(t, "GET", base+"/orders/"+id, "")
		if status != http.StatusOK {
			t.Fatalf("GET /orders/%s: %d %s", id, status, b)
		}
		var o orders.Order
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatalf("GET /orders/%s: %v in %s", id, err, b)
		}
		if o.Status == orders.StatusNotified && len(o.Events) == 5 {
			return o
		}
		last = b
		if time.Now().After(deadline) {
			t.Fatalf("order %s not fulfilled after %s; last seen:\n%s", id, wait, last)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// checkTimeline checks that o's events form one business transaction in
// causal order.
func checkTimeline(t *testing.T, o orders.Order) {
	t.Helper()
	want := []struct {
		typ, source string
		status      orders.Status
	}{
		{"order_placed.v1", "/shop/orders", orders.StatusPlaced},
		{"payment_succeeded.v1", "/shop/payment", orders.StatusPaid},
		{"inventory_reserved.v1", "/shop/inventory", orders.StatusReserved},
		{"shipping_arranged.v1", "/shop/shipping", orders.StatusShipped},
		{"customer_notified.v1", "/shop/notification", orders.StatusNotified},
	}
	if len(o.Events) != len(want) {
		t.Fatalf("order %s has %d events, want %d: %+v", o.ID, len(o.Events), len(want), o.Events)
	}
	seen := make(map[string]bool)
	for i, ev := range o.Events {
		w := want[i]
		if ev.Type != w.typ || ev.Source != w.source || ev.Status != w.status {
			t.Errorf("event %d is %s from %s (%s), want %s from %s (%s)", i, ev.Type, ev.Source, ev.Status, w.typ, w.source, w.status)
		}
		if ev.CorrelationID != o.ID {
			t.Errorf("event %d (%s) has correlation id %q, want the order id %q", i, ev.Type, ev.CorrelationID, o.ID)
		}
		if ev.ID == "" || seen[ev.ID] {
			t.Errorf("event %d (%s) has id %q, empty or seen before", i, ev.Type, ev.ID)
		}
		seen[ev.ID] = true
		if ev.Summary == "" || ev.Time.IsZero() {
			t.Errorf("event %d (%s) lacks a summary or a time: %+v", i, ev.Type, ev)
		}
		if i == 0 {
			if ev.CausationID != "" {
				t.Errorf("order_placed has causation id %q, want none", ev.CausationID)
			}
			continue
		}
		prev := o.Events[i-1]
		if ev.CausationID != prev.ID {
			t.Errorf("%s has causation id %q, want the id of %s, %q", ev.Type, ev.CausationID, prev.Type, prev.ID)
		}
		if ev.Time.Before(prev.Time) {
			t.Errorf("%s at %s is earlier than its cause %s at %s", ev.Type, ev.Time, prev.Type, prev.Time)
		}
	}
}

func TestOrderIsFulfilled(t *testing.T) {
	base := startShop(t, nil)
	id := placeOrder(t, base, `{"customer":"ada","items":[{"sku":"book","qty":2},{"sku":"pen","qty":1}]}`)

	o := waitFulfilled(t, base, id)
	checkTimeline(t, o)
	if o.ID != id || o.Customer != "ada" || o.Links.Self != "/orders/"+id {
		t.Errorf("order = %+v", o)
	}
	if want := (orders.Money{Cents: 2*1200 + 150, Currency: "EUR"}); o.Total != want {
		t.Errorf("total = %v, want %v", o.Total, want)
	}
	if len(o.Lines) != 2 || o.Lines[0].SKU != "book" || o.Lines[0].Qty != 2 || o.Lines[0].UnitPrice.Cents != 1200 {
		t.Errorf("lines = %+v", o.Lines)
	}
}

func TestUnknownOrderAndWrongMethod(t *testing.T) {
	base := startShop(t, nil)

	status, b := do(t, "GET", base+"/orders/nope", "")
	var body map[string]string
	if err := json.Unmarshal(b, &body); err != nil || status != http.StatusNotFound || !strings.Contains(body["error"], `"nope"`) {
		t.Errorf("GET unknown order: %d %s (%v)", status, b, err)
	}
	if status, b := do(t, "DELETE", base+"/orders", ""); status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /orders: %d %s", status, b)
	}
	if status, b := do(t, "GET", base+"/healthz", ""); status != http.StatusOK {
		t.Errorf("GET /healthz: %d %s", status, b)
	}
}

func TestBadRequestsPlaceNothing(t *testing.T) {
	// A probe service hears every order_placed event, as any new service
	// subscribing to the topic would.
	placed := make(chan string, 100)
	base := startShop(t, func(app *troupe.App) {
		probe := app.Service("probe")
		troupe.Subscribe(probe, orders.Placed, "count", func(_ context.Context, ev troupe.Event[orders.PlacedV1]) error {
			placed <- ev.Data.OrderID
			return nil
		}, troupe.Concurrency(1))
	})

	for _, tc := range []struct {
		name, body string
		status     int
		wantErr    []string // substrings of the error message
	}{
		{"empty body", ``, 400, []string{"body is empty"}},
		{"not JSON", `customer=ada`, 400, []string{"not valid JSON"}},
		{"truncated JSON", `{"customer":"ada","items":[`, 400, []string{"not valid JSON"}},
		{"array", `[]`, 400, []string{"must be a JSON object"}},
		{"two objects", `{"customer":"ada","items":[{"sku":"book","qty":1}]} {}`, 400, []string{"send one JSON object"}},
		{"unknown field", `{"customer":"ada","items":[{"sku":"book","qty":1}],"coupon":"FREE"}`, 400, []string{`unknown field "coupon"`}},
		{"unknown item field", `{"customer":"ada","items":[{"sku":"book","qty":1,"colour":"red"}]}`, 400, []string{`unknown field "colour"`}},
		{"qty as string", `{"customer":"ada","items":[{"sku":"book","qty":"2"}]}`, 400, []string{"items.qty", "int", "string"}},
		{"missing customer", `{"items":[{"sku":"book","qty":1}]}`, 400, []string{"customer is required"}},
		{"blank customer", `{"customer":"  ","items":[{"sku":"book","qty":1}]}`, 400, []string{"customer is required"}},
		{"no items", `{"customer":"ada","items":[]}`, 400, []string{"at least one item"}},
		{"items missing", `{"customer":"ada"}`, 400, []string{"at least one item"}},
		{"qty zero", `{"customer":"ada","items":[{"sku":"book","qty":0}]}`, 400, []string{"items[0].qty must be at least 1"}},
		{"qty negative", `{"customer":"ada","items":[{"sku":"book","qty":1},{"sku":"pen","qty":-3}]}`, 400, []string{"items[1].qty must be at least 1, got -3"}},
		{"qty too large", `{"customer":"ada","items":[{"sku":"book","qty":1000}]}`, 400, []string{"items[0].qty must be at most"}},
		{"empty sku", `{"customer":"ada","items":[{"sku":"","qty":1}]}`, 400, []string{"items[0].sku is required"}},
		{"unknown sku", `{"customer":"ada","items":[{"sku":"piano","qty":1}]}`, 400, []string{`"piano" is not sold here`, "book"}},
		{"several problems", `{"customer":"","items":[{"sku":"","qty":0}]}`, 400, []string{"customer is required", "items[0].sku is required", "items[0].qty must be at least 1"}},
		{"too large", `{"customer":"` + strings.Repeat("a", 70<<10) + `"}`, 413, []string{"larger than"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := do(t, "POST", base+"/orders", tc.body)
			if status != tc.status {
				t.Errorf("status %d, want %d; body %s", status, tc.status, b)
			}
			var body map[string]string
			if err := json.Unmarshal(b, &body); err != nil || body["error"] == "" {
				t.Fatalf("body %s is not a JSON error (%v)", b, err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(body["error"], w) {
					t.Errorf("error %q does not mention %q", body["error"], w)
				}
			}
		})
	}

	status, b := do(t, "GET", base+"/orders", "")
	var list struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal(b, &list); err != nil || status != http.StatusOK || list.Count != 0 {
		t.Errorf("after bad requests, GET /orders: %d %s (%v); want no orders", status, b, err)
	}

	// One good order afterwards: the probe must see it and nothing before it.
	id := placeOrder(t, base, `{"customer":"ada","items":[{"sku":"book","qty":2}]}`)
	waitFulfilled(t, base, id)
	select {
	case got := <-placed:
		if got != id {
			t.Errorf("the first order_placed event is for order %q, want the good order %q: a bad request published", got, id)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the probe never saw the good order")
	}
}

func TestConcurrentOrdersAllArrive(t *testing.T) {
	base := startShop(t, nil)
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"customer":"customer-%d","items":[{"sku":"book","qty":1},{"sku":"tea","qty":%d}]}`, i, i%5+1)
			status, b := do(t, "POST", base+"/orders", body)
			if status != http.StatusCreated {
				t.Errorf("order %d: %d %s", i, status, b)
				return
			}
			var placed struct{ ID string }
			if err := json.NewDecoder(bytes.NewReader(b)).Decode(&placed); err != nil {
				t.Errorf("order %d: %v", i, err)
			}
			ids[i] = placed.ID
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	seen := make(map[string]bool)
	for i, id := range ids {
		if seen[id] {
			t.Fatalf("order id %q given twice", id)
		}
		seen[id] = true
		o := waitFulfilled(t, base, id)
		checkTimeline(t, o)
		if o.Customer != fmt.Sprintf("customer-%d", i) {
			t.Errorf("order %s is for %q, want customer-%d", id, o.Customer, i)
		}
	}
	status, b := do(t, "GET", base+"/orders", "")
	var list struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal(b, &list); err != nil || status != http.StatusOK || list.Count != n {
		t.Errorf("GET /orders: %d %s (%v); want %d orders", status, b, err, n)
	}
}

// countingHandler counts the log records whose message contains a word.
type countingHandler struct {
	slog.Handler
	word string
	n    *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.word) {
		h.n.Add(1)
	}
	return nil
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

// With a payment provider failing half its attempts, every order is still
// fulfilled, charged once: the failures were retried.
func TestInjectedPaymentFailuresAreRetried(t *testing.T) {
	var timeouts atomic.Int64
	log := slog.New(countingHandler{Handler: slog.DiscardHandler, word: "provider timed out", n: &timeouts})
	const rate = 0.5
	base := startShopWith(t, log, nil, shop.FailRate(rate))
	const n = 10
	ids := make([]string, n)
	for i := range n {
		ids[i] = placeOrder(t, base, fmt.Sprintf(`{"customer":"c%d","items":[{"sku":"pen","qty":1}]}`, i))
	}
	// The injected failures are a hash of the order id and the attempt, so
	// the test knows how many attempts each order needs and waits for as
	// long as troupe's default backoff takes to get there (500ms doubling,
	// with up to 20% jitter); an order that fails all 8 attempts is
	// dead-lettered and never fulfilled (in about 1 run in 26 at this rate
	// one of the ten does).
	failed := 0
	for _, id := range ids {
		k := 0 // attempts that fail before the first that succeeds
		for k < transport.DefaultMaxAttempts && payment.InjectedFailure(id, k+1, rate) {
			k++
		}
		failed += k
		if k == transport.DefaultMaxAttempts {
			t.Logf("order %s fails every attempt (dead-lettered); not waiting for it", id)
			continue
		}
		wait := waitTimeout
		for i := range k {
			backoff := min(transport.DefaultMinBackoff<<i, transport.DefaultMaxBackoff)
			wait += time.Duration((1 + transport.DefaultJitter) * float64(backoff))
		}
		o := waitFulfilledWithin(t, base, id, wait)
		checkTimeline(t, o)
	}
	if failed > 0 && timeouts.Load() < int64(failed) {
		t.Errorf("%d injected payment failures logged, want at least %d: FailRate(%v) did not take effect", timeouts.Load(), failed, rate)
	}
}
