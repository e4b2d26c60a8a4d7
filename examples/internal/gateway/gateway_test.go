package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/storetest"
	"github.com/troupe-go/troupe/troupetest"
)

// start runs an app named name whose payment service has a gateway, on db
// and the data directory dir, until the test ends or stop is called.
func start(t *testing.T, name, dir string, db *store.DB, services ...string) (*gateway.Gateway, func()) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: name, DataDir: dir, Services: services}))
	app.Service("payment")
	app.Service("other")
	g := gateway.Declare(app, db, "payment")
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if err := app.Stop(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)
	return g, stop
}

func randName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "gw-" + hex.EncodeToString(b)
}

// One key moves money once, however often it is sent; the books count
// what moved and what was repeated, and keep it across a restart. Two
// keys for one order are two charges, and the books say so.
func TestGatewayMovesMoneyOncePerKey(t *testing.T) {
	name := randName()
	storetest.Each(t, name, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		dir := t.TempDir()
		g, stop := start(t, name, dir, db)
		first, moved, err := g.Charge(ctx, "o1/charge", "o1", "ada", 2400)
		if err != nil || !moved {
			t.Fatalf("first charge: moved %v, %v", moved, err)
		}
		again, moved, err := g.Charge(ctx, "o1/charge", "o1", "ada", 2400)
		if err != nil || moved || again.ID != first.ID || again.Repeats != 1 {
			t.Fatalf("repeated charge: %+v moved %v, %v; want the first charge, nothing moved", again, moved, err)
		}
		if _, _, err := g.Refund(ctx, "o1/refund", "o1", "ada", 2400); err != nil {
			t.Fatal(err)
		}
		if _, _, err := g.Charge(ctx, "o2/charge", "o2", "bob", 800); err != nil {
			t.Fatal(err)
		}
		stop()

		g, _ = start(t, name, dir, db)
		// A service that sent a new key for o2 would charge it twice.
		if _, moved, err := g.Charge(ctx, "o2/charge-again", "o2", "bob", 800); err != nil || !moved {
			t.Fatalf("a second key: moved %v, %v", moved, err)
		}
		books, err := g.Books(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := gateway.Books{Charges: 3, ChargedCents: 4000, Refunds: 1, RefundedCents: 2400, NetCents: 1600,
			OrdersChargedTwice: 1, RepeatedRequests: 1}
		if books != want {
			t.Errorf("books after a restart %+v, want %+v", books, want)
		}
		ms, err := g.Movements(ctx, "o1")
		if err != nil || len(ms) != 2 || ms[0].Kind != gateway.KindCharge || ms[1].Kind != gateway.KindRefund {
			t.Errorf("movements of o1: %+v, %v", ms, err)
		}
	})
}

// Where the payment service does not run, the gateway opens nothing and
// says so.
func TestGatewayElsewhere(t *testing.T) {
	g, _ := start(t, randName(), t.TempDir(), &store.DB{}, "other")
	if _, _, err := g.Charge(t.Context(), "k", "o", "ada", 1); !errors.Is(err, gateway.ErrNotOpen) {
		t.Errorf("Charge: %v, want ErrNotOpen", err)
	}
}
