// Command shop runs the order fulfilment example: an HTTP API to place
// orders, and the payment, inventory, shipping and notification services
// that fulfil them by events. See README.md.
//
//	go run ./examples/shop                      all services, embedded broker, http://localhost:8080
//	go run ./examples/shop --services payment   one service, against a shared --broker
//	go run ./examples/shop graph                the services and events as a Mermaid flowchart
//
// The environment variable SHOP_APP_NAME renames the app (default "shop").
// The name is the app's namespace on the broker, so two shops with different
// names share one broker without seeing each other's events; every process
// of one shop must use the same name.
package main

import (
	"os"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/shop"
	_ "github.com/troupe-go/troupe/topology" // adds the graph command
)

func main() {
	shop.NewApp(troupe.Config{Name: os.Getenv("SHOP_APP_NAME")}).Main()
}
