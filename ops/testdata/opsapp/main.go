// Command opsapp is the test suite's app binary: the ops tests run it as a
// real process to check what an operator sees, exit codes included. Its
// declarations match the tests' shop; $OPSAPP_NAME names it.
package main

import (
	"context"
	"os"

	"github.com/troupe-go/troupe"
	_ "github.com/troupe-go/troupe/ops"
)

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

type paymentSucceeded struct {
	OrderID string `json:"order_id"`
}

func main() {
	placed := troupe.NewTopic[orderPlaced]("order_placed", 1)
	paid := troupe.NewTopic[paymentSucceeded]("payment_succeeded", 1)
	app := troupe.New(troupe.Config{Name: os.Getenv("OPSAPP_NAME")})
	app.Service("orders").Publishes(placed)
	payment := app.Service("payment").Publishes(paid)
	troupe.Subscribe(payment, placed, "charge", func(context.Context, troupe.Event[orderPlaced]) error { return nil })
	troupe.Subscribe(app.Service("shipping"), paid, "ship", func(context.Context, troupe.Event[paymentSucceeded]) error { return nil })
	app.Main()
}
