// Package loyalty is the loyalty service of the food-delivery example: it
// adds points to a customer's wallet for every order a restaurant confirms,
// one point per euro, once per order however often the event arrives.
//
// The credits are in its database (loyalty.db in the data directory, or
// the loyalty_ tables of --db's PostgreSQL), one row per order, written in
// the inbox transaction of the confirmation: a wallet survives restarts
// and never counts an order twice.
//
// Route:
//
//	GET /loyalty/{customer}   the customer's points and the orders that earned them
package loyalty

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/api"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/outbox"
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

// schema is the service's table, beside its outbox's. seq orders a
// customer's credits: a Unix time in nanoseconds.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS loyalty_credits (
	order_id TEXT PRIMARY KEY,
	customer TEXT NOT NULL,
	points   BIGINT NOT NULL,
	seq      BIGINT NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS loyalty_credits_customer ON loyalty_credits (customer, seq)`,
}

type wallets struct {
	log *slog.Logger
	ob  *outbox.Outbox
}

// Register declares the loyalty service on app, with its wallets in db
// (opened when the app starts, where the service runs). log gets one line
// per credit; nil means slog.Default().
func Register(app *troupe.App, log *slog.Logger, db *store.DB) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	ws := &wallets{log: log, ob: store.Outbox(app, db, ServiceName, schema...)}
	svc := app.Service(ServiceName)
	outbox.Subscribe(svc, restaurant.ConfirmedOrder, "add-points", ws.ob, ws.credit)
	svc.HandleFunc("GET /loyalty/{customer}", ws.serve)
	svc.HandleFunc("/loyalty/", httpjson.Fallback("/loyalty/{customer}", "GET"))
	return svc
}

// credit adds points for the confirmed order unless it was credited
// before (under another event id: the inbox skips the same one).
func (ws *wallets) credit(ctx context.Context, tx *sql.Tx, ev troupe.Event[restaurant.ConfirmedOrderV1]) error {
	o := ev.Data
	points := o.AmountCents / 100
	res, err := tx.ExecContext(ctx, store.Q(ws.ob, `INSERT INTO loyalty_credits (order_id, customer, points, seq) VALUES (?, ?, ?, ?)
		ON CONFLICT (order_id) DO NOTHING`), o.OrderID, o.Customer, points, time.Now().UnixNano())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		ws.log.Info(fmt.Sprintf("loyalty: %d points to %s for order %s", points, o.Customer, o.OrderID))
	}
	return err
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
	wal, err := ws.wallet(r.Context(), name)
	if err != nil {
		ws.log.Error("loyalty: could not read the wallet of "+name, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the loyalty service cannot read its wallets right now; try again")
		return
	}
	if len(wal.Orders) == 0 {
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("customer %q has no points yet", name))
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, wal)
}

func (ws *wallets) wallet(ctx context.Context, customer string) (Wallet, error) {
	db := ws.ob.DB()
	if db == nil {
		return Wallet{}, outbox.ErrNotOpen
	}
	rows, err := db.QueryContext(ctx, store.Q(ws.ob, `SELECT order_id, points FROM loyalty_credits WHERE customer = ? ORDER BY seq, order_id`), customer)
	if err != nil {
		return Wallet{}, err
	}
	defer rows.Close()
	w := Wallet{Customer: customer, Orders: []string{}}
	for rows.Next() {
		var id string
		var points int64
		if err := rows.Scan(&id, &points); err != nil {
			return Wallet{}, err
		}
		w.Points += points
		w.Orders = append(w.Orders, id)
	}
	return w, rows.Err()
}
