package fooddelivery_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/troupetest"
)

func TestBadRequestsGetJSONErrorsAndPublishNothing(t *testing.T) {
	var pub *troupetest.PublishLog
	_, base := startApp(t, fooddelivery.Options{Restaurant: fastRestaurant(0)}, func(app *troupe.App) { pub = troupetest.RecordPublishes(app) })
	good := orderBody("ada")
	item := func(s string) string {
		return `{"customer":"ada","restaurant":"napoli","items":[` + s + `]}`
	}

	for _, tc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
		wantErr                  []string // substrings of the error message
	}{
		// POST /orders
		{"empty body", "POST", "/orders", "", nil, 400, []string{"body is empty"}},
		{"not JSON", "POST", "/orders", "customer=ada", nil, 400, []string{"not valid JSON"}},
		{"truncated JSON", "POST", "/orders", `{"customer":"ada","items":[`, nil, 400, []string{"ends too early"}},
		{"array", "POST", "/orders", `[]`, nil, 400, []string{"must be a JSON object"}},
		{"two objects", "POST", "/orders", good + ` {}`, nil, 400, []string{"send one JSON object"}},
		{"unknown field", "POST", "/orders", `{"customer":"ada","restaurant":"napoli","items":[],"tip":5}`, nil, 400, []string{`unknown field "tip"`}},
		{"unknown item field", "POST", "/orders", item(`{"name":"x","qty":1,"price_cents":1,"spicy":true}`), nil, 400, []string{`unknown field "spicy"`}},
		{"qty as string", "POST", "/orders", item(`{"name":"x","qty":"2","price_cents":1}`), nil, 400, []string{"items.qty", "int", "string"}},
		{"price as float", "POST", "/orders", item(`{"name":"x","qty":1,"price_cents":9.5}`), nil, 400, []string{"items.price_cents", "int64"}},
		{"missing customer", "POST", "/orders", `{"restaurant":"napoli","items":[{"name":"x","qty":1,"price_cents":1}]}`, nil, 422, []string{"customer is required"}},
		{"blank restaurant", "POST", "/orders", `{"customer":"ada","restaurant":"  ","items":[{"name":"x","qty":1,"price_cents":1}]}`, nil, 422, []string{"restaurant is required"}},
		{"control character", "POST", "/orders", `{"customer":"a\u0000da","restaurant":"napoli","items":[{"name":"x","qty":1,"price_cents":1}]}`, nil, 422, []string{"customer must not contain control characters"}},
		{"long customer", "POST", "/orders", `{"customer":"` + strings.Repeat("a", 101) + `","restaurant":"napoli","items":[{"name":"x","qty":1,"price_cents":1}]}`, nil, 422, []string{"customer must be at most 100"}},
		{"no items", "POST", "/orders", item(``), nil, 422, []string{"at least one item"}},
		{"too many items", "POST", "/orders", item(strings.Repeat(`{"name":"x","qty":1,"price_cents":1},`, 50) + `{"name":"x","qty":1,"price_cents":1}`), nil, 422, []string{"at most 50 items"}},
		{"qty zero", "POST", "/orders", item(`{"name":"x","qty":0,"price_cents":1}`), nil, 422, []string{"items[0].qty must be at least 1"}},
		{"qty too large", "POST", "/orders", item(`{"name":"x","qty":51,"price_cents":1}`), nil, 422, []string{"items[0].qty must be at most 50"}},
		{"free dish", "POST", "/orders", item(`{"name":"x","qty":1,"price_cents":0}`), nil, 422, []string{"items[0].price_cents must be at least 1"}},
		{"negative price", "POST", "/orders", item(`{"name":"x","qty":1,"price_cents":1},{"name":"y","qty":1,"price_cents":-500}`), nil, 422, []string{"items[1].price_cents must be at least 1, got -500"}},
		{"price too high", "POST", "/orders", item(`{"name":"x","qty":1,"price_cents":100001}`), nil, 422, []string{"at most 100000"}},
		{"nameless dish", "POST", "/orders", item(`{"name":"","qty":1,"price_cents":1}`), nil, 422, []string{"items[0].name is required"}},
		{"several problems", "POST", "/orders", `{"customer":"","restaurant":"","items":[{"name":"","qty":0,"price_cents":0}]}`, nil, 422,
			[]string{"customer is required", "restaurant is required", "items[0].name is required", "items[0].qty", "items[0].price_cents"}},
		{"too large", "POST", "/orders", `{"customer":"` + strings.Repeat("a", 70<<10) + `"}`, nil, 413, []string{"larger than 64 KiB"}},
		{"text content type", "POST", "/orders", good, []string{"Content-Type", "text/plain"}, 415, []string{`Content-Type "text/plain"`, "application/json"}},
		{"multipart content type", "POST", "/orders", good, []string{"Content-Type", "multipart/form-data; boundary=x"}, 415, []string{"application/json"}},
		{"form data", "POST", "/orders", "customer=ada&restaurant=napoli", []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, []string{"not valid JSON"}},
		{"empty idempotency key", "POST", "/orders", good, []string{"Idempotency-Key", ""}, 400, []string{"Idempotency-Key must be 1 to 200"}},
		{"idempotency key with space", "POST", "/orders", good, []string{"Idempotency-Key", "my key"}, 400, []string{"printable ASCII"}},
		{"idempotency key too long", "POST", "/orders", good, []string{"Idempotency-Key", strings.Repeat("k", 201)}, 400, []string{"1 to 200"}},
		{"wrong method on /orders", "DELETE", "/orders", "", nil, 405, []string{"/orders does not take DELETE", "GET, POST"}},
		// GET /orders
		{"unknown status", "GET", "/orders?status=lost", "", nil, 400, []string{`status "lost"`, "refunded"}},
		{"limit not a number", "GET", "/orders?limit=ten", "", nil, 400, []string{`limit "ten"`}},
		{"limit zero", "GET", "/orders?limit=0", "", nil, 400, []string{"1 to 10000"}},
		{"limit too large", "GET", "/orders?limit=10001", "", nil, 400, []string{"1 to 10000"}},
		{"unknown parameter", "GET", "/orders?stauts=refunded", "", nil, 400, []string{`unknown query parameter "stauts"`, "status, limit"}},
		// GET /orders/{id}
		{"unknown order", "GET", "/orders/nope", "", nil, 404, []string{`no order "nope"`}},
		{"order id too long", "GET", "/orders/" + strings.Repeat("x", 101), "", nil, 400, []string{"1 to 100"}},
		{"order with a query", "GET", "/orders/nope?verbose=1", "", nil, 400, []string{`unknown query parameter "verbose"`}},
		{"wrong method on an order", "PUT", "/orders/abc", "{}", nil, 405, []string{"/orders/{id} does not take PUT"}},
		{"below an order", "GET", "/orders/abc/items", "", nil, 404, []string{"no resource at /orders/abc/items"}},
		// GET /ledger
		{"ledger parameter", "GET", "/ledger?all=1", "", nil, 400, []string{`unknown query parameter "all"`, "order"}},
		{"ledger empty order", "GET", "/ledger?order=", "", nil, 400, []string{"order must be an order id"}},
		{"ledger unknown order", "GET", "/ledger?order=nope", "", nil, 404, []string{`no charge for order "nope"`}},
		{"ledger wrong method", "POST", "/ledger", `{"charge":1}`, nil, 405, []string{"/ledger does not take POST"}},
		// GET /notifications
		{"notifications for nobody", "GET", "/notifications", "", nil, 400, []string{"?order=ID or ?customer=NAME"}},
		{"notifications empty order", "GET", "/notifications?order=", "", nil, 400, []string{"1 to 100"}},
		{"notifications parameter", "GET", "/notifications?email=ada", "", nil, 400, []string{`unknown query parameter "email"`}},
		{"notifications wrong method", "POST", "/notifications", `{}`, nil, 405, []string{"does not take POST"}},
		// GET /loyalty/{customer}
		{"unknown customer", "GET", "/loyalty/nobody", "", nil, 404, []string{`customer "nobody" has no points`}},
		{"loyalty without customer", "GET", "/loyalty/", "", nil, 404, []string{"no resource at /loyalty/"}},
		{"loyalty wrong method", "DELETE", "/loyalty/ada", "", nil, 405, []string{"does not take DELETE"}},
		{"loyalty parameter", "GET", "/loyalty/ada?x=1", "", nil, 400, []string{`unknown query parameter "x"`}},
		// Anything else
		{"unknown path", "GET", "/menu", "", nil, 404, []string{"no resource at /menu"}},
		{"wrong method on the index", "POST", "/", "{}", nil, 405, []string{"/ takes GET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b, h := do(t, tc.method, base+tc.path, tc.body, tc.header...)
			if status != tc.status {
				t.Errorf("status %d, want %d; body %s", status, tc.status, b)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
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
			if status == http.StatusMethodNotAllowed && h.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if got := pub.Taken(); len(got) > 0 {
				t.Errorf("the bad request published %v", got)
			}
		})
	}

	var l order.List
	getJSON(t, base+"/orders", &l)
	if l.Orders == nil || len(l.Orders) != 0 || l.Count != 0 {
		t.Errorf("after the bad requests GET /orders lists %+v; want no orders", l)
	}
	if b := books(t, base); b.Charges != 0 {
		t.Errorf("after the bad requests the ledger has %+v; want nothing charged", b)
	}

	// The witness works: a good order is seen, and the first event
	// published is its order_placed.
	id := place(t, base, good)
	waitTerminal(t, base, id, 4)
	if got := pub.Taken(); len(got) == 0 || got[0] != "order_placed.v1" {
		t.Errorf("after a good order the app published %v, want order_placed.v1 first", got)
	}
}

func TestIdempotencyKeyPlacesOneOrder(t *testing.T) {
	var pub *troupetest.PublishLog
	_, base := startApp(t, fooddelivery.Options{Restaurant: fastRestaurant(0)}, func(app *troupe.App) { pub = troupetest.RecordPublishes(app) })
	key := "3f1c2a9e-retry-me"
	id := place(t, base, orderBody("ada"), "Idempotency-Key", key)
	if id != order.IDForKey("ada", key) {
		t.Errorf("order id %s, want the one derived from the key", id)
	}
	waitTerminal(t, base, id, 4)
	pub.Taken()

	// The client retries: same answer, marked replayed, nothing published.
	status, b, _ := do(t, "POST", base+"/orders", orderBody("ada"), "Idempotency-Key", key)
	var a order.Accepted
	if err := json.Unmarshal(b, &a); err != nil || status != http.StatusAccepted || a.ID != id || !a.Replayed {
		t.Errorf("retried POST: %d %s (%v); want 202 for order %s, replayed", status, b, err, id)
	}
	// The same key for another order is refused.
	status, b, _ = do(t, "POST", base+"/orders", orderBody("ada")[:len(orderBody("ada"))-2]+`,{"name":"cola","qty":1,"price_cents":300}]}`, "Idempotency-Key", key)
	if status != http.StatusConflict || !strings.Contains(string(b), "different order") {
		t.Errorf("POST with the key of another order: %d %s; want 409", status, b)
	}
	if got := pub.Taken(); len(got) > 0 {
		t.Errorf("the retries published %v", got)
	}
	if bk := books(t, base); bk.Charges != 1 {
		t.Errorf("books %+v, want one charge", bk)
	}
	// Another customer may use the same key: it names another order.
	if other := place(t, base, orderBody("bob"), "Idempotency-Key", key); other == id {
		t.Errorf("bob's order with ada's key got ada's order id %s", id)
	}
}
