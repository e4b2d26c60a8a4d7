package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/dashboard"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/troupetest"
)

// The test choreography: orders → payment.charge → shipping.ship →
// notification.notify; a declined payment is compensated (OnFailure) into
// orders.cancel → notification.apologize; a fragile parcel fails shipping
// until its dead letter is replayed.

type OrderPlaced struct {
	ID      string `json:"id"`
	Amount  int    `json:"amount"`
	Fragile bool   `json:"fragile,omitempty"`
}

type PaymentDone struct {
	ID      string `json:"id"`
	Fragile bool   `json:"fragile,omitempty"`
}

type PaymentFailed struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

type Shipped struct {
	ID string `json:"id"`
}

type OrderCancelled struct {
	ID string `json:"id"`
}

var (
	OrderPlacedT    = troupe.NewTopic[OrderPlaced]("order_placed", 1)
	PaymentDoneT    = troupe.NewTopic[PaymentDone]("payment_done", 1)
	PaymentFailedT  = troupe.NewTopic[PaymentFailed]("payment_failed", 1)
	ShippedT        = troupe.NewTopic[Shipped]("shipped", 1)
	OrderCancelledT = troupe.NewTopic[OrderCancelled]("order_cancelled", 1)
)

// declineAbove is the amount above which payment.charge declines.
const declineAbove = 1000

var (
	errDeclined = errors.New("card declined")
	errFragile  = errors.New("no packaging for fragile parcels yet")
)

// newShop declares the test choreography on cfg.
func newShop(cfg troupe.Config) *troupe.App {
	app := troupe.New(cfg)
	orders := app.Service("orders").Publishes(OrderPlacedT, OrderCancelledT)
	payment := app.Service("payment").Publishes(PaymentDoneT, PaymentFailedT)
	shipping := app.Service("shipping").Publishes(ShippedT)
	notification := app.Service("notification")

	orders.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var o OrderPlaced
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.ID == "" {
			http.Error(w, `{"error":"send {\"id\":…,\"amount\":…}"}`, http.StatusBadRequest)
			return
		}
		ctx := troupe.WithCorrelationID(r.Context(), "order-"+o.ID)
		if err := troupe.Publish(ctx, OrderPlacedT, o); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	troupe.Subscribe(payment, OrderPlacedT, "charge", func(ctx context.Context, ev troupe.Event[OrderPlaced]) error {
		if ev.Data.Amount > declineAbove {
			return troupe.Permanent(errDeclined)
		}
		return troupe.Publish(ctx, PaymentDoneT, PaymentDone{ID: ev.Data.ID, Fragile: ev.Data.Fragile})
	}, troupe.Emits(PaymentDoneT), troupe.MaxAttempts(3), troupe.Backoff(10*time.Millisecond, 50*time.Millisecond),
		troupe.OnFailure(PaymentFailedT, func(ev troupe.Event[OrderPlaced], cause error) PaymentFailed {
			return PaymentFailed{ID: ev.Data.ID, Reason: cause.Error()}
		}))
	troupe.Subscribe(shipping, PaymentDoneT, "ship", func(ctx context.Context, ev troupe.Event[PaymentDone]) error {
		if ev.Data.Fragile && ev.Replays == 0 {
			return errFragile
		}
		return troupe.Publish(ctx, ShippedT, Shipped{ID: ev.Data.ID})
	}, troupe.Emits(ShippedT), troupe.MaxAttempts(2), troupe.Backoff(10*time.Millisecond, 50*time.Millisecond))
	troupe.Subscribe(orders, PaymentFailedT, "cancel", func(ctx context.Context, ev troupe.Event[PaymentFailed]) error {
		return troupe.Publish(ctx, OrderCancelledT, OrderCancelled{ID: ev.Data.ID})
	}, troupe.Emits(OrderCancelledT))
	troupe.Subscribe(notification, ShippedT, "notify", func(context.Context, troupe.Event[Shipped]) error { return nil })
	troupe.Subscribe(notification, OrderCancelledT, "apologize", func(context.Context, troupe.Event[OrderCancelled]) error { return nil })
	return app
}

// testShop is the test choreography, started with the journal and the
// dashboard on 127.0.0.1.
type testShop struct {
	app     *troupe.App
	dash    *dashboard.Dashboard
	base    string // "http://127.0.0.1:port"
	shipped *troupetest.Observer[Shipped]
}

func startShop(t *testing.T, opts ...dashboard.Option) *testShop {
	t.Helper()
	return startShopWith(t, "127.0.0.1:0", false, opts...)
}

func startShopOn(t *testing.T, addr string, opts ...dashboard.Option) *testShop {
	t.Helper()
	return startShopWith(t, addr, false, opts...)
}

// startShopWith starts the shop on addr; with observe, testShop.shipped
// sees every shipped event (the observer is a service of its own, which
// the graph then shows too).
func startShopWith(t *testing.T, addr string, observe bool, opts ...dashboard.Option) *testShop {
	t.Helper()
	app := newShop(troupetest.Config(t, troupe.Config{Name: "dashtest", HTTPAddr: addr}))
	journal.Install(app)
	dash, err := dashboard.Install(app, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var shipped *troupetest.Observer[Shipped]
	if observe {
		shipped = troupetest.Observe(t, app, ShippedT)
	}
	troupetest.Start(t, app)
	_, port, _ := strings.Cut(app.HTTPAddr(), "]:")
	if port == "" {
		_, port, _ = strings.Cut(app.HTTPAddr(), ":")
	}
	return &testShop{app: app, dash: dash, base: "http://127.0.0.1:" + port, shipped: shipped}
}

// order places an order through the orders service's route; its
// correlation id is "order-<id>".
func (s *testShop) order(t *testing.T, id string, amount int, fragile bool) string {
	t.Helper()
	b, _ := json.Marshal(OrderPlaced{ID: id, Amount: amount, Fragile: fragile})
	res, err := http.Post(s.base+"/orders", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("POST /orders: %s: %s", res.Status, body)
	}
	return "order-" + id
}

// call sends a request to the dashboard and decodes its JSON answer into
// v (when not nil); it returns the status and, for errors, the message.
func (s *testShop) call(t *testing.T, method, path, token string, v any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: %s with Content-Type %q, not JSON: %s", method, path, res.Status, ct, body)
	}
	if res.StatusCode >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s: %s without an error message: %s", method, path, res.Status, body)
		}
		return res.StatusCode, e.Error
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
	}
	return res.StatusCode, ""
}

// get is call for a GET that must answer 200.
func (s *testShop) get(t *testing.T, path string, v any) {
	t.Helper()
	if code, msg := s.call(t, http.MethodGet, path, "", v); code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, msg)
	}
}

// eventually polls cond until it reports done, and fails the test with
// cond's last word after troupetest.DefaultTimeout.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(troupetest.DefaultTimeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(20 * time.Millisecond) // a poll interval, not a wait for an outcome
	}
	t.Fatalf("%s: gave up after %s; last: %s", what, troupetest.DefaultTimeout, last)
}

// timelineStep mirrors the steps of GET api/timeline.
type timelineStep struct {
	Kind         string  `json:"kind"`
	Type         string  `json:"type"`
	Subscription string  `json:"subscription"`
	Service      string  `json:"service"`
	Attempt      int     `json:"attempt"`
	Replays      int     `json:"replays"`
	Outcome      string  `json:"outcome"`
	Error        string  `json:"error"`
	Depth        int     `json:"depth"`
	OffsetMs     float64 `json:"offsetMs"`
}

type timelineAnswer struct {
	Correlation string         `json:"correlation"`
	Steps       []timelineStep `json:"steps"`
}

// waitTimeline polls the timeline of corr until has reports what it needs.
func (s *testShop) waitTimeline(t *testing.T, corr string, has func(timelineAnswer) (bool, string)) timelineAnswer {
	t.Helper()
	var tl timelineAnswer
	eventually(t, "timeline of "+corr, func() (bool, string) {
		tl = timelineAnswer{}
		code, msg := s.call(t, http.MethodGet, "/ui/api/timeline/"+corr, "", &tl)
		if code != http.StatusOK {
			return false, fmt.Sprintf("%d %s", code, msg)
		}
		return has(tl)
	})
	return tl
}

func hasStep(tl timelineAnswer, sub, outcome string) bool {
	for _, st := range tl.Steps {
		if st.Subscription == sub && st.Outcome == outcome && st.Kind == "handle" {
			return true
		}
	}
	return false
}

type deadLetterAnswer struct {
	Subscriptions []struct {
		Subscription string `json:"subscription"`
		Topic        string `json:"topic"`
		More         bool   `json:"more"`
		Error        string `json:"error"`
		DeadLetters  []struct {
			ID          string          `json:"id"`
			Type        string          `json:"type"`
			Correlation string          `json:"correlation"`
			Reason      string          `json:"reason"`
			Error       string          `json:"error"`
			Attempts    int             `json:"attempts"`
			Data        json.RawMessage `json:"data"`
		} `json:"deadLetters"`
	} `json:"subscriptions"`
}

// waitDeadLetter waits for the dead letter of corr in shipping.ship and
// returns its id.
func (s *testShop) waitDeadLetter(t *testing.T, corr string) string {
	t.Helper()
	id := ""
	eventually(t, "dead letter of "+corr, func() (bool, string) {
		var ans deadLetterAnswer
		s.get(t, "/ui/api/deadletters?subscription=shipping.ship", &ans)
		for _, dl := range ans.Subscriptions[0].DeadLetters {
			if dl.Correlation == corr {
				id = dl.ID
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", ans)
	})
	return id
}
