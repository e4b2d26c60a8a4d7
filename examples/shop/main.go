// Command shop runs the order fulfilment example: an HTTP API to place
// orders, and the payment, inventory, shipping and notification services
// that fulfil them by events, each keeping its state in a database of its
// own. See README.md.
//
//	go run ./examples/shop                              all services, embedded broker, http://localhost:8080
//	go run ./examples/shop --fail-rate 0.3              the payment provider loses 30% of its answers; watch the retries
//	go run ./examples/shop --decline-rate 0.1 --initial-stock book=20
//	                                                    cancelled orders: declined cards, and stock run out after payment
//	go run ./examples/shop --db postgres://postgres@127.0.0.1:5432/test
//	go run ./examples/shop --services payment --http off --broker nats://127.0.0.1:4222
//	go run ./examples/shop graph                        the services and events, failure paths included
//	go run ./examples/shop dlq                          the dead letters, to replay or discard
//
// It serves the dashboard at /ui/ (the URL with its admin token is logged
// at start) and Prometheus metrics at /metrics, and journals every step
// for the trace and tail commands. Run it with -h for every flag and
// command.
//
// The environment variable SHOP_APP_NAME renames the app (default "shop").
// The name is the app's namespace on the broker and its schema on
// PostgreSQL, so two shops with different names share one broker without
// seeing each other's events; every process of one shop must use the same
// name.
package main

import (
	"fmt"
	"os"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/operator"
	"github.com/troupe-go/troupe/examples/shop/shop"
)

func main() {
	app := shop.NewApp(troupe.Config{Name: os.Getenv("SHOP_APP_NAME")}, nil)
	if err := operator.Install(app); err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(1)
	}
	app.Main()
}
