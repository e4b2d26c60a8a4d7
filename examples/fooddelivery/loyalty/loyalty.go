// Package loyalty is the loyalty service of the food-delivery example: it
// adds points to a customer's wallet for every order a restaurant confirms,
// one point per euro, once per order however often the event arrives.
//
// Route:
//
//	GET /loyalty/{customer}   the customer's points and the orders that earned them
package loyalty

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/api"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
)

// ServiceName is the loyalty service's name in the app and on --services.
const ServiceName = "loyalty"

// Wallet is the body of GET /loyalty/{customer}.
type Wallet struct {
	Customer string `json:"customer"`
	Points   int64  `json:"points"`
	// Orders are the orders that earned the points, in the order credited.
	Orders []string `json:"orders"`
}

type wallets struct {
	mu       sync.Mutex
	byName   map[string]*Wallet
	credited map[string]bool // order ids already credited
}

// Register declares the loyalty service on app. log gets one line per
// credit; nil means slog.Default().
func Register(app *troupe.App, log *slog.Logger) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	ws := &wallets{byName: make(map[string]*Wallet), credited: make(map[string]bool)}
	svc := app.Service(ServiceName)
	troupe.Subscribe(svc, restaurant.ConfirmedOrder, "add-points", func(_ context.Context, ev troupe.Event[restaurant.ConfirmedOrderV1]) error {
		o := ev.Data
		if pts, ok := ws.credit(o.Customer, o.OrderID, o.AmountCents/100); ok {
			log.Info(fmt.Sprintf("loyalty: %d points to %s for order %s", pts, o.Customer, o.OrderID))
		}
		return nil
	})
	svc.HandleFunc("GET /loyalty/{customer}", ws.serve)
	svc.HandleFunc("/loyalty/", httpjson.Fallback("/loyalty/{customer}", "GET"))
	return svc
}

// credit adds points for order id unless it was credited before.
func (ws *wallets) credit(customer, id string, points int64) (int64, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.credited[id] {
		return 0, false
	}
	ws.credited[id] = true
	w := ws.byName[customer]
	if w == nil {
		w = &Wallet{Customer: customer}
		ws.byName[customer] = w
	}
	w.Points += points
	w.Orders = append(w.Orders, id)
	return points, true
}

func (ws *wallets) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("customer")
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if !api.ValidRef(name) {
		httpjson.WriteError(w, http.StatusBadRequest, "a customer is 1 to 100 printable characters")
		return
	}
	ws.mu.Lock()
	wal := ws.byName[name]
	var out Wallet
	if wal != nil {
		out = Wallet{Customer: wal.Customer, Points: wal.Points, Orders: slices.Clone(wal.Orders)}
	}
	ws.mu.Unlock()
	if wal == nil {
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("customer %q has no points yet", name))
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}
