// Command shop runs the order fulfilment example: an HTTP API to place
// orders, and the payment, inventory, shipping and notification services
// that fulfil them by events. See README.md.
//
//	go run ./examples/shop                      all services, embedded broker, http://localhost:8080
//	go run ./examples/shop --services payment   one service, against a shared --broker
package main

import (
	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/shop"
)

func main() {
	shop.NewApp(troupe.Config{}).Main()
}
