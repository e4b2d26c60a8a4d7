// Command fooddelivery runs the food-delivery example: an HTTP API to place
// orders, and the payment, restaurant, notification, delivery-partner and
// loyalty services that carry each order to a courier, or refund it when
// the restaurant cannot take it. Each service keeps its state in its own
// database, so kill -9 and a restart forget nothing. See README.md.
//
//	go run ./examples/fooddelivery                          every service, embedded broker, http://localhost:8080
//	go run ./examples/fooddelivery --simulate 1000 --restaurant-failure-rate 0.2
//	go run ./examples/fooddelivery --services payment --http off --broker amqp://guest:guest@127.0.0.1:5672/
//	go run ./examples/fooddelivery graph --format mermaid   the choreography, success and compensation paths
//	go run ./examples/fooddelivery trace <order id>         an order's timeline from the journal (with --broker of a running system)
//	go run ./examples/fooddelivery -h                       every flag, with its default, and the commands
//
// Besides troupe's standard flags (--broker, --data, --services, --http,
// --log-format, --log-level) it takes --db, --restaurant-failure-rate,
// --payment-crash-rate, --simulate and --simulate-rate (see package
// fooddelivery's Options), and it has the operator surface of every
// example (examples/internal/operator): the dashboard at /ui/, Prometheus
// metrics at /metrics, a journal of every step, and the graph, tail,
// trace and dlq commands.
//
// The environment variable FOODDELIVERY_APP_NAME renames the app (default
// "fooddelivery"): its namespace on the broker, which every process of one
// system must share.
package main

import (
	"fmt"
	"os"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/internal/operator"
)

func main() {
	app := fooddelivery.NewApp(troupe.Config{Name: os.Getenv("FOODDELIVERY_APP_NAME")},
		&fooddelivery.Options{Stdout: os.Stdout, Stderr: os.Stderr})
	if err := operator.Install(app); err != nil {
		fmt.Fprintln(os.Stderr, "fooddelivery:", err)
		os.Exit(1)
	}
	app.Main()
}
