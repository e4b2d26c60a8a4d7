// Package inventory is the inventory service of the shop: once an order is
// paid it reserves the order's items from stock and publishes [Reserved].
// When it cannot (out of stock), troupe publishes [ReservationFailed], the
// subscription's declared compensation (troupe.OnFailure), and the payment
// service refunds the order.
//
// The stock is data in the service's database: it survives restarts, GET
// /stock reads it, and POST /stock replenishes it.
//
// Routes:
//
//	GET  /stock   per SKU: the units on the shelf and the units reserved for orders
//	POST /stock   replenish: {"items":[{"sku":"book","qty":100}]}; an Idempotency-Key header makes a retry safe
package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/shop/orders"
	"github.com/troupe-go/troupe/examples/shop/payment"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the inventory service's name in the app and on --services.
const ServiceName = "inventory"

// ErrOutOfStock means the stock cannot cover an order.
var ErrOutOfStock = errors.New("out of stock")

// Options tunes the inventory service.
type Options struct {
	// InitialStock is the stock of each SKU the first time the service
	// starts on a database; later starts keep what the database holds. A
	// SKU it does not name starts with none. Default [DefaultStock].
	InitialStock Stock
}

// schema holds the stock, the reservations made (one row per order and
// SKU), and the idempotency keys of the deliveries POST /stock took.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS inventory_stock (
	sku   TEXT PRIMARY KEY,
	units BIGINT NOT NULL
)`,
	`CREATE TABLE IF NOT EXISTS inventory_reservations (
	order_id    TEXT NOT NULL,
	sku         TEXT NOT NULL,
	qty         BIGINT NOT NULL,
	reserved_us BIGINT NOT NULL,
	PRIMARY KEY (order_id, sku)
)`,
	`CREATE TABLE IF NOT EXISTS inventory_deliveries (
	idem_key     TEXT PRIMARY KEY,
	request_hash TEXT NOT NULL,
	received_us  BIGINT NOT NULL
)`,
}

// Register declares the inventory service on app, with its database from
// db, opened when the app starts in the process that runs the service,
// where the stock opts.InitialStock names is put on the shelf if the
// database has none of it yet. log receives one line per reservation; nil
// means the app's logger. opts must not be nil.
func Register(app *troupe.App, log *slog.Logger, db *store.DB, opts *Options) *troupe.Service {
	if log == nil {
		log = app.Logger()
	}
	w := &warehouse{log: log, ob: store.Outbox(app, db, ServiceName, schema...)}
	app.OnStart(func(ctx context.Context) error {
		if w.ob.DB() == nil {
			return nil // the service runs elsewhere
		}
		stock := opts.InitialStock
		if stock == nil {
			stock = DefaultStock()
		}
		return w.stockUp(ctx, stock)
	})
	svc := app.Service(ServiceName).Publishes(Reserved, ReservationFailed)
	outbox.Subscribe(svc, payment.Succeeded, "reserve", w.ob, w.reserve,
		troupe.Emits(Reserved),
		troupe.OnFailure(ReservationFailed, w.failed),
	)
	svc.HandleFunc("GET /stock", w.serveStock)
	svc.HandleFunc("POST /stock", w.replenish)
	svc.HandleFunc("/stock", httpjson.Fallback("/stock", "GET", "POST"))
	return svc
}

// warehouse is the inventory service: the stock in ob's database.
type warehouse struct {
	log *slog.Logger
	ob  *outbox.Outbox
}

// stockUp puts the initial stock of every SKU the database does not hold
// yet on the shelf.
func (w *warehouse) stockUp(ctx context.Context, stock Stock) error {
	for _, sku := range orders.SKUs() {
		_, err := w.ob.DB().ExecContext(ctx, store.Q(w.ob, `INSERT INTO inventory_stock (sku, units) VALUES (?, ?) ON CONFLICT DO NOTHING`), sku, stock[sku])
		if err != nil {
			return fmt.Errorf("inventory: initial stock: %w", err)
		}
	}
	return nil
}

// reserve is the handler of payment.Succeeded. It takes the order's items
// off the shelf, all or nothing, records the reservation and publishes
// Reserved, in one transaction that also records the event as handled.
// When the shelf cannot cover the order it returns a permanent error:
// waiting does not bring stock back, so troupe compensates at once.
func (w *warehouse) reserve(ctx context.Context, tx *sql.Tx, ev troupe.Event[payment.SucceededV1]) error {
	o := ev.Data
	want := make(map[string]int64)
	for _, l := range o.Lines {
		want[l.SKU] += int64(l.Qty)
	}
	// Always in the same order, so that two orders never wait for each
	// other's rows on PostgreSQL.
	var left []string
	for _, sku := range slices.Sorted(maps.Keys(want)) {
		n := want[sku]
		res, err := tx.ExecContext(ctx, store.Q(w.ob, `UPDATE inventory_stock SET units = units - ? WHERE sku = ? AND units >= ?`), n, sku, n)
		if err != nil {
			return err
		}
		if changed, err := res.RowsAffected(); err != nil {
			return err
		} else if changed == 0 {
			have, err := units(ctx, tx, w.ob, sku)
			if err != nil {
				return err
			}
			return troupe.Permanent(fmt.Errorf("%w: %d×%s wanted, %d on the shelf", ErrOutOfStock, n, sku, have))
		}
		_, err = tx.ExecContext(ctx, store.Q(w.ob, `INSERT INTO inventory_reservations (order_id, sku, qty, reserved_us) VALUES (?, ?, ?, ?)`),
			o.OrderID, sku, n, time.Now().UnixMicro())
		if err != nil {
			return err
		}
		have, err := units(ctx, tx, w.ob, sku)
		if err != nil {
			return err
		}
		left = append(left, fmt.Sprintf("%d %s", have, sku))
	}
	w.log.Info(fmt.Sprintf("inventory: reserved %s for order %s (left: %s)", orders.DescribeLines(o.Lines), o.OrderID, strings.Join(left, ", ")))
	return outbox.PublishTx(ctx, tx, Reserved, ReservedV1{
		OrderID: o.OrderID, Customer: o.Customer, Lines: o.Lines, ReservationID: "rsv-" + o.OrderID,
	})
}

func units(ctx context.Context, tx *sql.Tx, ob *outbox.Outbox, sku string) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx, store.Q(ob, `SELECT units FROM inventory_stock WHERE sku = ?`), sku).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// failed builds the compensation of a paid order the inventory could not
// reserve; troupe publishes it in the order's business transaction.
func (w *warehouse) failed(ev troupe.Event[payment.SucceededV1], cause error) ReservationFailedV1 {
	o := ev.Data
	if troupe.IsPermanent(cause) {
		if inner := errors.Unwrap(cause); inner != nil {
			cause = inner // "out of stock: …" rather than "permanent: out of stock: …"
		}
	}
	w.log.Info(fmt.Sprintf("inventory: cannot reserve order %s: %v; the payment service refunds it", o.OrderID, cause))
	return ReservationFailedV1{
		OrderID: o.OrderID, Customer: o.Customer, Lines: o.Lines, Amount: o.Amount,
		Reason: cause.Error(), OutOfStock: errors.Is(cause, ErrOutOfStock), Attempts: ev.Attempt,
	}
}
