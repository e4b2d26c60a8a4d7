package fooddelivery_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/troupetest"
)

// After a stop and a start on the same data (SQLite files in the data
// directory, or the app's schema on PostgreSQL), every route answers
// exactly as before, and a retried POST places nothing new.
func TestRestartForgetsNothing(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "fdrestart_" + hex.EncodeToString(b)
	storetest.Each(t, name, func(t *testing.T, db *store.DB) {
		dir := t.TempDir()
		start := func() (*troupe.App, string) {
			opts := fooddelivery.Options{Restaurant: fastRestaurant(1), DB: *db}
			app := fooddelivery.NewApp(troupetest.Config(t, troupe.Config{Name: name, DataDir: dir, HTTPAddr: "127.0.0.1:0"}), &opts)
			if err := app.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			return app, "http://" + app.HTTPAddr()
		}
		app, base := start()
		okKey, ok, _ := keyWithFate(t, "ada", 1, restaurant.Flaky)
		badKey, bad, _ := keyWithFate(t, "ada", 1, restaurant.Reject)
		place(t, base, orderBody("ada"), "Idempotency-Key", okKey)
		place(t, base, orderBody("ada"), "Idempotency-Key", badKey)
		waitTerminal(t, base, ok, 4)
		waitTerminal(t, base, bad, 4)
		messages(t, base, ok, 2)
		messages(t, base, bad, 2)
		paths := []string{"/orders/" + ok, "/orders/" + bad, "/orders", "/ledger", "/ledger?order=" + ok, "/ledger?order=" + bad,
			"/notifications?customer=ada", "/loyalty/ada"}
		before := make(map[string]string)
		for _, p := range paths {
			status, body, _ := do(t, "GET", base+p, "")
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", p, status, body)
			}
			before[p] = string(body)
		}
		client.CloseIdleConnections()
		if err := app.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}

		app, base = start()
		defer func() {
			client.CloseIdleConnections()
			if err := app.Stop(context.Background()); err != nil {
				t.Error(err)
			}
		}()
		for _, p := range paths {
			if status, body, _ := do(t, "GET", base+p, ""); status != http.StatusOK || string(body) != before[p] {
				t.Errorf("GET %s after the restart: %d\n%s\nbefore:\n%s", p, status, body, before[p])
			}
		}
		// The key survived too: the retry is answered as the first request.
		status, body, _ := do(t, "POST", base+"/orders", orderBody("ada"), "Idempotency-Key", okKey)
		var a order.Accepted
		if err := json.Unmarshal(body, &a); err != nil || status != http.StatusAccepted || !a.Replayed || a.ID != ok {
			t.Errorf("retried POST after the restart: %d %s, want the order replayed", status, body)
		}
		if bk := books(t, base); bk.Charges != 2 {
			t.Errorf("books %+v, want 2 charges", bk)
		}
	})
}
