package shop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/apitest"
	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/shop/internal/verify"
	"github.com/troupe-go/troupe/examples/shop/inventory"
	"github.com/troupe-go/troupe/examples/shop/notification"
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/examples/shop/payment"
	"github.com/troupe-go/troupe/examples/shop/shop"
)

// checkPath checks that o ended along the named path.
func checkPath(t *testing.T, o orders.Order, want string) {
	t.Helper()
	got, err := verify.Ended(o, shop.DefaultName)
	if err != nil {
		t.Error(err)
	}
	if got != want {
		t.Errorf("order %s took the %q path, want %q", o.ID, got, want)
	}
}

func TestOrderIsFulfilled(t *testing.T) {
	base := startShop(t, nil, nil)
	id := placeOrder(t, base, `{"customer":"ada","items":[{"sku":"book","qty":2},{"sku":"pen","qty":1}]}`)

	o := waitEnded(t, base, id)
	checkPath(t, o, "shipped")
	if o.ID != id || o.Customer != "ada" || o.Links.Self != "/orders/"+id || o.Reason != "" {
		t.Errorf("order = %+v", o)
	}
	if want := (orders.Money{Cents: 2*1200 + 150, Currency: "EUR"}); o.Total != want {
		t.Errorf("total = %v, want %v", o.Total, want)
	}
	if len(o.Lines) != 2 || o.Lines[0].SKU != "book" || o.Lines[0].Qty != 2 || o.Lines[0].UnitPrice.Cents != 1200 {
		t.Errorf("lines = %+v", o.Lines)
	}
	var ledger payment.OrderMovements
	apitest.GetJSON(t, base+"/ledger?order="+id, &ledger)
	if len(ledger.Movements) != 1 || ledger.Movements[0].Kind != gateway.KindCharge || ledger.Movements[0].AmountCents != o.Total.Cents ||
		ledger.Movements[0].Key != id+"/charge" {
		t.Errorf("ledger of the order: %+v", ledger)
	}
	var mail notification.Messages
	apitest.GetJSON(t, base+"/notifications?order="+id, &mail)
	if len(mail.Messages) != 1 || mail.Messages[0].Subject != "shipped" || !strings.Contains(mail.Messages[0].Text, "on its way") {
		t.Errorf("messages about the order: %+v", mail)
	}
	var stock inventory.Levels
	apitest.GetJSON(t, base+"/stock", &stock)
	if stock.Stock[0].SKU != "book" || stock.Stock[0].OnShelf != 498 || stock.Stock[0].Reserved != 2 {
		t.Errorf("stock after the order: %+v", stock)
	}
}

// A declined card ends the order: cancelled, with its reason, nothing
// charged, the customer told.
func TestDeclinedOrderIsCancelled(t *testing.T) {
	base := startShop(t, &shop.Options{Payment: payment.Options{DeclineRate: 1}}, nil)
	id := placeOrder(t, base, `{"customer":"ada","items":[{"sku":"book","qty":1}]}`)
	o := waitEnded(t, base, id)
	checkPath(t, o, "declined")
	if !strings.Contains(o.Reason, "declined") {
		t.Errorf("reason %q", o.Reason)
	}
	if b := books(t, base); b.Charges != 0 || b.Refunds != 0 {
		t.Errorf("books %+v, want nothing moved", b)
	}
	var mail notification.Messages
	apitest.GetJSON(t, base+"/notifications?order="+id, &mail)
	if len(mail.Messages) != 1 || mail.Messages[0].Subject != "cancelled" || !strings.Contains(mail.Messages[0].Text, "not charged") {
		t.Errorf("messages about the order: %+v", mail)
	}
}

// Out of stock after payment: the declared compensation refunds the charge
// once, the order ends cancelled with its reason, the customer is told.
func TestOutOfStockIsRefunded(t *testing.T) {
	stock := inventory.DefaultStock()
	stock["book"] = 1
	base := startShop(t, &shop.Options{Inventory: inventory.Options{InitialStock: stock}}, nil)
	first := placeOrder(t, base, `{"customer":"ada","items":[{"sku":"book","qty":1}]}`)
	checkPath(t, waitEnded(t, base, first), "shipped")
	second := placeOrder(t, base, `{"customer":"bob","items":[{"sku":"book","qty":1},{"sku":"pen","qty":2}]}`)
	o := waitEnded(t, base, second)
	checkPath(t, o, "out of stock")
	if want := "out of stock: 1×book wanted, 0 on the shelf"; o.Reason != want {
		t.Errorf("reason %q, want %q", o.Reason, want)
	}
	var ledger payment.OrderMovements
	apitest.GetJSON(t, base+"/ledger?order="+second, &ledger)
	if len(ledger.Movements) != 2 || ledger.Movements[1].Kind != gateway.KindRefund || ledger.Movements[1].Key != second+"/refund" ||
		ledger.Movements[1].AmountCents != o.Total.Cents {
		t.Errorf("ledger of the order: %+v", ledger)
	}
	var mail notification.Messages
	apitest.GetJSON(t, base+"/notifications?order="+second, &mail)
	if len(mail.Messages) != 1 || !containsAll(mail.Messages[0].Text, "cancelled", "out of stock", "refunded the 15.00 EUR") {
		t.Errorf("messages about the order: %+v", mail)
	}
	// Nothing was taken from the shelf for the cancelled order: not its pens either.
	var levels inventory.Levels
	apitest.GetJSON(t, base+"/stock", &levels)
	for _, l := range levels.Stock {
		if l.SKU == "pen" && (l.OnShelf != 1000 || l.Reserved != 0) {
			t.Errorf("pens %+v, want all 1000 on the shelf", l)
		}
	}
	l := waitSettled(t, base, 2)
	if p := verify.Reconcile(l, books(t, base), mailStats(t, base)); len(p) > 0 {
		t.Error(p)
	}
}

// A provider that never answers: the charge's declared compensation
// (payment_failed) refunds whatever the provider took before it timed out.
func TestPaymentFailureIsRefunded(t *testing.T) {
	opts := fastRetries(shop.Options{Payment: payment.Options{FailRate: 1, ChargeAttempts: 3}})
	base := startShop(t, opts, nil)
	id := placeOrder(t, base, `{"customer":"ada","items":[{"sku":"mug","qty":1}]}`)
	o := waitEnded(t, base, id)
	checkPath(t, o, "payment failed")
	if !containsAll(o.Reason, "after 3 attempt(s)", "timed out") {
		t.Errorf("reason %q", o.Reason)
	}
	b := books(t, base)
	if b.Charges != 1 || b.Refunds != 1 || b.NetCents != 0 || b.RepeatedRequests != 2 {
		t.Errorf("books %+v: want one charge (repeated twice by the retries) and its refund", b)
	}
}

// With a provider that loses a third of its answers, every order is still
// shipped and charged once: the retries find the charge by its key.
func TestInjectedPaymentFailuresAreRetried(t *testing.T) {
	const rate = 0.3
	opts := fastRetries(shop.Options{Payment: payment.Options{FailRate: rate}})
	base := startShop(t, opts, nil)
	const n = 20
	failed := 0
	for i := range n {
		id := placeOrder(t, base, fmt.Sprintf(`{"customer":"c%d","items":[{"sku":"pen","qty":1}]}`, i))
		for a := 1; a < 8 && payment.InjectedFailure(id, a, rate); a++ {
			failed++
		}
	}
	l := waitSettled(t, base, n)
	b := books(t, base)
	if p := verify.Reconcile(l, b, mailStats(t, base)); len(p) > 0 {
		t.Error(p)
	}
	if b.RepeatedRequests < failed {
		t.Errorf("%d repeated requests at the gateway, want at least %d: the injected failures did not take effect", b.RepeatedRequests, failed)
	}
	t.Logf("%d injected failures; by status %v; books %+v", failed, l.ByStatus, b)
}

// More orders than the stock covers, with declines and lost answers
// injected (issue #23): every order ends, and the money reconciles to the
// cent, through the HTTP API only.
func TestMoreOrdersThanStock(t *testing.T) {
	stock := inventory.DefaultStock()
	stock["book"] = 40
	opts := fastRetries(shop.Options{
		Payment:   payment.Options{FailRate: 0.2, DeclineRate: 0.1},
		Inventory: inventory.Options{InitialStock: stock},
	})
	base := startShop(t, opts, nil)
	const n = 150
	ids := make([]string, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				ids[i] = placeOrder(t, base, fmt.Sprintf(`{"customer":"c%d","items":[{"sku":"book","qty":1}]}`, i), fmt.Sprintf("more-%d", i))
			}
		})
	}
	wg.Wait()
	l := waitSettled(t, base, n)
	paths := map[string]int{}
	for _, id := range ids {
		name, err := verify.Ended(getOrder(t, base, id), shop.DefaultName)
		if err != nil {
			t.Error(err)
		}
		paths[name]++
	}
	b := books(t, base)
	if p := verify.Reconcile(l, b, mailStats(t, base)); len(p) > 0 {
		t.Error(p)
	}
	if paths["shipped"] != 40 || paths["out of stock"] == 0 || paths["declined"] == 0 || b.Refunds != paths["out of stock"]+paths["payment failed"] {
		t.Errorf("paths %v, books %+v: want the 40 books shipped and a refund for every other paid order", paths, b)
	}
	t.Logf("paths %v; books %+v", paths, b)
}

// A restarted shop on the same data directory forgets nothing: every
// order answers exactly as before, and new orders go on from there.
func TestRestartForgetsNothing(t *testing.T) {
	dir := t.TempDir()
	stock := inventory.DefaultStock()
	stock["lamp"] = 2
	opts := &shop.Options{Inventory: inventory.Options{InitialStock: stock}}
	base, app := startShopIn(t, dir, testLogger(), opts, nil)
	var ids []string
	for i := range 3 {
		ids = append(ids, placeOrder(t, base, fmt.Sprintf(`{"customer":"c%d","items":[{"sku":"lamp","qty":1}]}`, i), fmt.Sprintf("k%d", i)))
	}
	waitSettled(t, base, 3)
	before := map[string][]byte{}
	for _, id := range ids {
		_, b, _ := apitest.Do(t, "GET", base+"/orders/"+id, "")
		before[id] = b
	}
	_, listBefore, _ := apitest.Do(t, "GET", base+"/orders", "")
	booksBefore := books(t, base)
	stopShop(t, app)

	// Another initial stock is ignored: the database has stock.
	stock["lamp"] = 50
	base, _ = startShopIn(t, dir, testLogger(), opts, nil)
	for _, id := range ids {
		if _, b, _ := apitest.Do(t, "GET", base+"/orders/"+id, ""); string(b) != string(before[id]) {
			t.Errorf("order %s after the restart:\n%s\nbefore:\n%s", id, b, before[id])
		}
	}
	if _, b, _ := apitest.Do(t, "GET", base+"/orders", ""); string(b) != string(listBefore) {
		t.Errorf("GET /orders after the restart:\n%s\nbefore:\n%s", b, listBefore)
	}
	if b := books(t, base); b != booksBefore {
		t.Errorf("books after the restart %+v, before %+v", b, booksBefore)
	}
	// The key of a placed order still answers with it.
	if id := placeOrder(t, base, `{"customer":"c0","items":[{"sku":"lamp","qty":1}]}`, "k0"); id != ids[0] {
		t.Errorf("the retried key k0 placed %s, want %s", id, ids[0])
	}
	o := waitEnded(t, base, placeOrder(t, base, `{"customer":"d","items":[{"sku":"lamp","qty":1}]}`))
	checkPath(t, o, "out of stock")
}

func TestIdempotencyKey(t *testing.T) {
	base := startShop(t, nil, nil)
	body := `{"customer":"ada","items":[{"sku":"book","qty":1}]}`
	id := placeOrder(t, base, body, "order-1")
	status, b, h := apitest.Do(t, "POST", base+"/orders", body, "Idempotency-Key", "order-1")
	if status != http.StatusCreated || !strings.Contains(string(b), id) || h.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %d %s %v", status, b, h)
	}
	status, b, _ = apitest.Do(t, "POST", base+"/orders", `{"customer":"bob","items":[{"sku":"book","qty":1}]}`, "Idempotency-Key", "order-1")
	if status != http.StatusUnprocessableEntity || !strings.Contains(errorOf(t, b), "different order") {
		t.Errorf("key reused for another order: %d %s", status, b)
	}
	for _, key := range []string{"", "has space", strings.Repeat("k", 256), "é"} {
		req, _ := http.NewRequest("POST", base+"/orders", strings.NewReader(body))
		req.Header["Idempotency-Key"] = []string{key}
		resp, err := apitest.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("key %q: %d, want 400", key, resp.StatusCode)
		}
	}
	waitEnded(t, base, id)
	if l := waitSettled(t, base, 1); l.Count != 1 {
		t.Errorf("%d orders, want 1", l.Count)
	}
}

func TestUnknownOrderAndWrongMethod(t *testing.T) {
	base := startShop(t, nil, nil)
	status, b, _ := apitest.Do(t, "GET", base+"/orders/nope", "")
	if status != http.StatusNotFound || !strings.Contains(errorOf(t, b), `"nope"`) {
		t.Errorf("GET unknown order: %d %s", status, b)
	}
	for _, tc := range []struct{ method, path string }{
		{"DELETE", "/orders"}, {"PUT", "/orders/x"}, {"POST", "/ledger"}, {"DELETE", "/stock"}, {"POST", "/notifications"},
	} {
		if status, b, h := apitest.Do(t, tc.method, base+tc.path, ""); status != http.StatusMethodNotAllowed || h.Get("Allow") == "" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, status, b)
		}
	}
	if status, b, _ := apitest.Do(t, "GET", base+"/healthz", ""); status != http.StatusOK {
		t.Errorf("GET /healthz: %d %s", status, b)
	}
}

func TestBadRequestsPlaceNothing(t *testing.T) {
	// A probe service hears every order_placed event, as any new service
	// subscribing to the topic would.
	placed := make(chan string, 100)
	base := startShop(t, nil, func(app *troupe.App) {
		probe := app.Service("probe")
		troupe.Subscribe(probe, orders.Placed, "count", func(_ context.Context, ev troupe.Event[orders.PlacedV1]) error {
			placed <- ev.Data.OrderID
			return nil
		}, troupe.Concurrency(1))
	})

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		wantErr                  []string // substrings of the error message
	}{
		{"empty body", "POST", "/orders", ``, 400, []string{"body is empty"}},
		{"not JSON", "POST", "/orders", `customer=ada`, 400, []string{"not valid JSON"}},
		{"truncated JSON", "POST", "/orders", `{"customer":"ada","items":[`, 400, []string{"not valid JSON"}},
		{"array", "POST", "/orders", `[]`, 400, []string{"must be a JSON object"}},
		{"two objects", "POST", "/orders", `{"customer":"ada","items":[{"sku":"book","qty":1}]} {}`, 400, []string{"send one JSON object"}},
		{"unknown field", "POST", "/orders", `{"customer":"ada","items":[{"sku":"book","qty":1}],"coupon":"FREE"}`, 400, []string{`unknown field "coupon"`}},
		{"unknown item field", "POST", "/orders", `{"customer":"ada","items":[{"sku":"book","qty":1,"colour":"red"}]}`, 400, []string{`unknown field "colour"`}},
		{"qty as string", "POST", "/orders", `{"customer":"ada","items":[{"sku":"book","qty":"2"}]}`, 400, []string{"items.qty", "int", "string"}},
		{"missing customer", "POST", "/orders", `{"items":[{"sku":"book","qty":1}]}`, 400, []string{"customer is required"}},
		{"blank customer", "POST", "/orders", `{"customer":"  ","items":[{"sku":"book","qty":1}]}`, 400, []string{"customer is required"}},
		{"no items", "POST", "/orders", `{"customer":"ada","items":[]}`, 400, []string{"at least one item"}},
		{"items missing", "POST", "/orders", `{"customer":"ada"}`, 400, []string{"at least one item"}},
		{"qty zero", "POST", "/orders", `{"customer":"ada","items":[{"sku":"book","qty":0}]}`, 400, []string{"items[0].qty must be at least 1"}},
		{"qty negative", "POST", "/orders", `{"customer":"ada","items":[{"sku":"book","qty":1},{"sku":"pen","qty":-3}]}`, 400, []string{"items[1].qty must be at least 1, got -3"}},
		{"qty too large", "POST", "/orders", `{"customer":"ada","items":[{"sku":"book","qty":1000}]}`, 400, []string{"items[0].qty must be at most"}},
		{"empty sku", "POST", "/orders", `{"customer":"ada","items":[{"sku":"","qty":1}]}`, 400, []string{"items[0].sku is required"}},
		{"unknown sku", "POST", "/orders", `{"customer":"ada","items":[{"sku":"piano","qty":1}]}`, 400, []string{`"piano" is not sold here`, "book"}},
		{"several problems", "POST", "/orders", `{"customer":"","items":[{"sku":"","qty":0}]}`, 400, []string{"customer is required", "items[0].sku is required", "items[0].qty must be at least 1"}},
		{"too large", "POST", "/orders", `{"customer":"` + strings.Repeat("a", 70<<10) + `"}`, 413, []string{"larger than"}},
		{"query on POST", "POST", "/orders?dry=1", `{"customer":"ada","items":[{"sku":"book","qty":1}]}`, 400, []string{`unknown query parameter "dry"`}},
		{"query on list", "GET", "/orders?limit=5", "", 400, []string{`unknown query parameter "limit"`, "takes none"}},
		{"query on order", "GET", "/orders/x?full=1", "", 400, []string{`unknown query parameter "full"`}},
		{"ledger parameter", "GET", "/ledger?all=1", "", 400, []string{`unknown query parameter "all"`, "order"}},
		{"ledger empty order", "GET", "/ledger?order=", "", 400, []string{"order must be one order id"}},
		{"notifications parameter", "GET", "/notifications?to=ada", "", 400, []string{`unknown query parameter "to"`}},
		{"notifications empty order", "GET", "/notifications?order=", "", 400, []string{"order must be one order id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b, _ := apitest.Do(t, tc.method, base+tc.path, tc.body)
			if status != tc.status {
				t.Errorf("status %d, want %d; body %s", status, tc.status, b)
			}
			if msg := errorOf(t, b); !containsAll(msg, tc.wantErr...) {
				t.Errorf("error %q does not mention all of %q", msg, tc.wantErr)
			}
		})
	}

	var l orders.List
	apitest.GetJSON(t, base+"/orders", &l)
	if l.Count != 0 {
		t.Errorf("after bad requests, GET /orders lists %d orders; want none", l.Count)
	}

	// One good order afterwards: the probe must see it and nothing before it.
	id := placeOrder(t, base, `{"customer":"ada","items":[{"sku":"book","qty":2}]}`)
	waitEnded(t, base, id)
	select {
	case got := <-placed:
		if got != id {
			t.Errorf("the first order_placed event is for order %q, want the good order %q: a bad request published", got, id)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the probe never saw the good order")
	}
}

// GET /stock reads the stock, POST /stock replenishes it once per key, and
// bad deliveries change nothing.
func TestStock(t *testing.T) {
	stock := inventory.DefaultStock()
	stock["book"] = 0
	base := startShop(t, &shop.Options{Inventory: inventory.Options{InitialStock: stock}}, nil)
	shelf := func() map[string]inventory.Level {
		var l inventory.Levels
		apitest.GetJSON(t, base+"/stock", &l)
		m := map[string]inventory.Level{}
		for _, lv := range l.Stock {
			m[lv.SKU] = lv
		}
		return m
	}
	if s := shelf(); len(s) != 5 || s["book"].OnShelf != 0 || s["pen"].OnShelf != 1000 {
		t.Fatalf("initial stock %+v", s)
	}
	body := `{"items":[{"sku":"book","qty":3},{"sku":"tea","qty":1}]}`
	for range 2 {
		status, b, _ := apitest.Do(t, "POST", base+"/stock", body, "Idempotency-Key", "delivery-1")
		if status != http.StatusOK {
			t.Fatalf("POST /stock: %d %s", status, b)
		}
	}
	if s := shelf(); s["book"].OnShelf != 3 || s["tea"].OnShelf != 301 {
		t.Errorf("after one delivery sent twice with its key: %+v", s)
	}
	if status, b, _ := apitest.Do(t, "POST", base+"/stock", `{"items":[{"sku":"book","qty":1}]}`, "Idempotency-Key", "delivery-1"); status != http.StatusUnprocessableEntity {
		t.Errorf("key reused for another delivery: %d %s", status, b)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		wantErr    []string
	}{
		{"empty", ``, 400, []string{"body is empty"}},
		{"not JSON", `book=3`, 400, []string{"not valid JSON"}},
		{"unknown field", `{"items":[{"sku":"book","qty":1}],"note":"x"}`, 400, []string{`unknown field "note"`}},
		{"no items", `{"items":[]}`, 400, []string{"at least one item"}},
		{"unknown sku", `{"items":[{"sku":"piano","qty":1}]}`, 400, []string{`"piano" is not sold here`}},
		{"qty zero", `{"items":[{"sku":"book","qty":0}]}`, 400, []string{"qty must be from 1 to 1000000, got 0"}},
		{"qty huge", `{"items":[{"sku":"book","qty":2000000}]}`, 400, []string{"qty must be from 1"}},
		{"qty as string", `{"items":[{"sku":"book","qty":"3"}]}`, 400, []string{"items.qty", "int", "string"}},
		{"too large", `{"items":[{"sku":"` + strings.Repeat("a", 70<<10) + `"}]}`, 413, []string{"larger than"}},
	} {
		status, b, _ := apitest.Do(t, "POST", base+"/stock", tc.body)
		if status != tc.status || !containsAll(errorOf(t, b), tc.wantErr...) {
			t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, status, b, tc.status, tc.wantErr)
		}
	}
	if status, b, _ := apitest.Do(t, "GET", base+"/stock?sku=book", ""); status != http.StatusBadRequest {
		t.Errorf("GET /stock?sku=book: %d %s", status, b)
	}
	if s := shelf(); s["book"].OnShelf != 3 || s["tea"].OnShelf != 301 {
		t.Errorf("bad deliveries changed the stock: %+v", s)
	}
	// The replenished books sell.
	o := waitEnded(t, base, placeOrder(t, base, `{"customer":"ada","items":[{"sku":"book","qty":3}]}`))
	checkPath(t, o, "shipped")
	if s := shelf(); s["book"].OnShelf != 0 || s["book"].Reserved != 3 {
		t.Errorf("after the order: %+v", s["book"])
	}
}

func TestConcurrentOrdersAllArrive(t *testing.T) {
	base := startShop(t, nil, nil)
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i] = placeOrder(t, base, fmt.Sprintf(`{"customer":"customer-%d","items":[{"sku":"book","qty":1},{"sku":"tea","qty":%d}]}`, i, i%5+1))
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
		o := waitEnded(t, base, id)
		checkPath(t, o, "shipped")
		if o.Customer != fmt.Sprintf("customer-%d", i) {
			t.Errorf("order %s is for %q, want customer-%d", id, o.Customer, i)
		}
	}
	l := waitSettled(t, base, n)
	if p := verify.Reconcile(l, books(t, base), mailStats(t, base)); len(p) > 0 {
		t.Error(p)
	}
	b, _ := json.Marshal(l.ByStatus)
	if l.ByStatus["notified"] != n {
		t.Errorf("by status %s, want all %d notified", b, n)
	}
}
