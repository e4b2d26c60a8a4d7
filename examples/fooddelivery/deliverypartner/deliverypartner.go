// Package deliverypartner is the delivery-partner service of the
// food-delivery example: for every order a restaurant confirms it assigns
// a courier and publishes [Assigned], the last event of a successful order.
//
// Its assignments are in its database (delivery-partner.db in the data
// directory, or the delivery_partner_ tables of --db's PostgreSQL), each
// written with its Assigned event in the inbox transaction of the
// confirmation: an order gets one courier, however often the confirmation
// arrives and whenever the process dies.
package deliverypartner

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/chance"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the delivery-partner service's name in the app and on
// --services.
const ServiceName = "delivery-partner"

// Assigned is published once a courier will pick the order up. The order
// service closes the order; the notification service tells the customer.
var Assigned = troupe.NewTopic[AssignedV1]("delivery_partner_assigned", 1)

// AssignedV1 is the data of an [Assigned] event, version 1.
type AssignedV1 struct {
	OrderID    string `json:"order_id"`
	Customer   string `json:"customer"`
	Restaurant string `json:"restaurant"`
	// Courier is who delivers the order.
	Courier string `json:"courier"`
	// ETAMinutes is when the customer can expect the food.
	ETAMinutes int `json:"eta_minutes"`
	Attempt    int `json:"attempt"`
}

// OrderRef returns the order id; it makes AssignedV1 an order.StepEvent.
func (e AssignedV1) OrderRef() string { return e.OrderID }

// Summary describes the assignment, as "grace picks it up, at the door in 35 min".
func (e AssignedV1) Summary() string {
	return fmt.Sprintf("%s picks it up, at the door in %d min", e.Courier, e.ETAMinutes)
}

// ProducedOnAttempt returns the attempt that assigned the courier.
func (e AssignedV1) ProducedOnAttempt() int { return e.Attempt }

// couriers are the simulated delivery partners.
var couriers = []string{"grace", "linus", "margaret", "ken", "barbara", "dennis"}

// schema is the service's table, beside its outbox's.
var schema = []string{`CREATE TABLE IF NOT EXISTS delivery_partner_assignments (
	order_id    TEXT PRIMARY KEY,
	customer    TEXT NOT NULL,
	restaurant  TEXT NOT NULL,
	courier     TEXT NOT NULL,
	eta_minutes INTEGER NOT NULL,
	assigned_by TEXT NOT NULL,
	assigned_ns BIGINT NOT NULL
)`}

// Register declares the delivery-partner service on app, with its
// assignments in db (opened when the app starts, where the service runs).
// log gets one line per assignment; nil means slog.Default().
func Register(app *troupe.App, log *slog.Logger, db *store.DB) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	ob := store.Outbox(app, db, ServiceName, schema...)
	svc := app.Service(ServiceName).Publishes(Assigned)
	outbox.Subscribe(svc, restaurant.ConfirmedOrder, "assign", ob, func(ctx context.Context, tx *sql.Tx, ev troupe.Event[restaurant.ConfirmedOrderV1]) error {
		o := ev.Data
		courier := couriers[int(chance.Unit("courier", o.OrderID)*float64(len(couriers)))]
		eta := o.ReadyInMinutes + 10 + int(chance.Unit("eta", o.OrderID)*20)
		// One courier per order: a second confirmation of the order (under
		// another event id) finds the assignment and publishes nothing.
		res, err := tx.ExecContext(ctx, store.Q(ob, `INSERT INTO delivery_partner_assignments
			(order_id, customer, restaurant, courier, eta_minutes, assigned_by, assigned_ns)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING`),
			o.OrderID, o.Customer, o.Restaurant, courier, eta, ev.ID, time.Now().UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		log.Info(fmt.Sprintf("delivery-partner: %s delivers order %s, eta %d min", courier, o.OrderID, eta))
		return outbox.PublishTx(ctx, tx, Assigned, AssignedV1{
			OrderID: o.OrderID, Customer: o.Customer, Restaurant: o.Restaurant,
			Courier: courier, ETAMinutes: eta, Attempt: ev.Attempt,
		})
	}, troupe.Emits(Assigned))
	return svc
}
