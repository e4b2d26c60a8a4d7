package troupe_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// When the broker goes away, publishing fails with an error instead of
// hanging or dropping the event, and once the broker is back the app
// reconnects by itself and handles everything that was stored.
func TestBrokerGoesAwayAndComesBack(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for reconnects")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	start := func() *natsjs.Server {
		srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: dir, Listen: addr})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := start()
	// Registered before the app's cleanup, so it runs after the app stopped.
	t.Cleanup(func() { srv.Shutdown() })

	a := troupe.New(troupe.Config{Name: "outage", Broker: "nats://" + addr, HTTPAddr: "off", Logger: quietLogger()})
	a.Service("orders").Publishes(testOrderPlaced)
	var mu sync.Mutex
	seen := map[string]bool{}
	troupe.Subscribe(a.Service("payment"), testOrderPlaced, "charge",
		func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
			mu.Lock()
			seen[ev.Data.OrderID] = true
			mu.Unlock()
			return nil
		})
	startApp(t, a)
	ctx := a.Context(context.Background())
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }

	if err := troupe.Publish(ctx, testOrderPlaced, orderPlaced{OrderID: "before"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first event handled", func() bool { return count() == 1 })

	srv.Shutdown()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := troupe.Publish(pctx, testOrderPlaced, orderPlaced{OrderID: "during"})
	cancel()
	if err == nil {
		t.Fatal("publish succeeded with the broker down")
	}
	t.Logf("publish during the outage fails: %v", err)

	srv = start()
	// The client reconnects on its own; publishes wait for it.
	waitFor(t, 30*time.Second, "a publish after the broker came back", func() bool {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return troupe.Publish(pctx, testOrderPlaced, orderPlaced{OrderID: "after"}) == nil
	})
	// The consumer's pull requests died with the server; it notices the
	// silence and asks again.
	waitFor(t, 45*time.Second, "the event published after the outage handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["after"]
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
