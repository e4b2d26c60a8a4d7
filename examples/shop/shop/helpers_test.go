package shop_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/apitest"
	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/internal/messenger"
	"github.com/troupe-go/troupe/examples/shop/internal/verify"
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/examples/shop/shop"
)

// waitTimeout bounds every wait of these tests; the flow itself takes
// milliseconds, retries with the tests' backoff well under a second.
const waitTimeout = 30 * time.Second

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// startShop starts the shop with opts (nil: defaults) on its own embedded
// broker, data directory and free port, stops it when the test ends, and
// returns the base URL. declare, if not nil, may add to the app first.
func startShop(t *testing.T, opts *shop.Options, declare func(*troupe.App)) string {
	t.Helper()
	base, _ := startShopIn(t, t.TempDir(), testLogger(), opts, declare)
	return base
}

// startShopIn is startShop on data directory dir, with a logger; it
// returns the app too, for a test that stops it itself (Stop twice is
// harmless).
func startShopIn(t *testing.T, dir string, log *slog.Logger, opts *shop.Options, declare func(*troupe.App)) (string, *troupe.App) {
	t.Helper()
	app := shop.NewApp(troupe.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: log}, opts)
	if declare != nil {
		declare(app)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopShop(t, app) })
	return "http://" + app.HTTPAddr(), app
}

func stopShop(t *testing.T, app *troupe.App) {
	t.Helper()
	// A connection the client dialled but never sent a request on holds
	// the server's graceful shutdown for 5s (see http.Server.Shutdown).
	apitest.Client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := app.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// fastRetries are payment options whose retries come quickly.
func fastRetries(o shop.Options) *shop.Options {
	o.Payment.MinBackoff, o.Payment.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	return &o
}

// placeOrder posts a valid order, with an Idempotency-Key when key is not
// empty, and returns its id.
func placeOrder(t *testing.T, base, body string, key ...string) string {
	t.Helper()
	var h []string
	if len(key) > 0 {
		h = []string{"Idempotency-Key", key[0]}
	}
	status, b, hdr := apitest.Do(t, "POST", base+"/orders", body, h...)
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
	if placed.ID == "" || placed.Status != "placed" || placed.Links["self"] != "/orders/"+placed.ID || hdr.Get("Location") != "/orders/"+placed.ID {
		t.Fatalf("POST /orders answered %s (Location %q)", b, hdr.Get("Location"))
	}
	return placed.ID
}

func getOrder(t *testing.T, base, id string) orders.Order {
	t.Helper()
	var o orders.Order
	apitest.GetJSON(t, base+"/orders/"+id, &o)
	return o
}

// waitEnded polls the order until it is terminal with a whole path in its
// timeline (the read model hears each step on a subscription of its own,
// so the last step can overtake one before it), and returns it.
func waitEnded(t *testing.T, base, id string) orders.Order {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		o := getOrder(t, base, id)
		if _, err := verify.Ended(o, shop.DefaultName); err == nil {
			return o
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(o, "", "  ")
			t.Fatalf("order %s has not ended after %s; last seen:\n%s", id, waitTimeout, b)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// waitSettled polls GET /orders until n orders are there, all terminal.
func waitSettled(t *testing.T, base string, n int) orders.List {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var l orders.List
		apitest.GetJSON(t, base+"/orders", &l)
		if l.Count == n && l.Settled() {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d orders of %d, %d terminal, %d stuck: %v", waitTimeout, l.Count, n, l.Terminal, l.Stuck, l.ByStatus)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func books(t *testing.T, base string) gateway.Books {
	t.Helper()
	var b gateway.Books
	apitest.GetJSON(t, base+"/ledger", &b)
	return b
}

func mailStats(t *testing.T, base string) messenger.Stats {
	t.Helper()
	var s messenger.Stats
	apitest.GetJSON(t, base+"/notifications", &s)
	return s
}

// errorOf decodes a JSON error body.
func errorOf(t *testing.T, b []byte) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("body %s is not a JSON error (%v)", b, err)
	}
	return e.Error
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
