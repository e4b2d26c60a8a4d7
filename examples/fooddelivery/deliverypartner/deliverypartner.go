// Package deliverypartner is the delivery-partner service of the
// food-delivery example: for every order a restaurant confirms it assigns
// a courier and publishes [Assigned], the last event of a successful order.
package deliverypartner

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/chance"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
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

// Register declares the delivery-partner service on app. log gets one line
// per assignment; nil means slog.Default().
func Register(app *troupe.App, log *slog.Logger) *troupe.Service {
	if log == nil {
		log = slog.Default()
	}
	svc := app.Service(ServiceName).Publishes(Assigned)
	troupe.Subscribe(svc, restaurant.ConfirmedOrder, "assign", func(ctx context.Context, ev troupe.Event[restaurant.ConfirmedOrderV1]) error {
		o := ev.Data
		// The courier is a function of the order, so a redelivery assigns
		// the same one and publishes the same event id again.
		courier := couriers[int(chance.Unit("courier", o.OrderID)*float64(len(couriers)))]
		eta := o.ReadyInMinutes + 10 + int(chance.Unit("eta", o.OrderID)*20)
		log.Info(fmt.Sprintf("delivery-partner: %s delivers order %s, eta %d min", courier, o.OrderID, eta))
		return troupe.Publish(ctx, Assigned, AssignedV1{
			OrderID: o.OrderID, Customer: o.Customer, Restaurant: o.Restaurant,
			Courier: courier, ETAMinutes: eta, Attempt: ev.Attempt,
		})
	}, troupe.Emits(Assigned))
	return svc
}
