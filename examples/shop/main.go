// Command shop runs the order fulfilment example: an HTTP API to place
// orders, and the payment, inventory, shipping and notification services
// that fulfil them by events. See README.md.
//
//	go run ./examples/shop                      all services, embedded broker, http://localhost:8080
//	go run ./examples/shop --fail-rate 0.3      the payment provider fails 30% of attempts; watch the retries
//	go run ./examples/shop --services payment   one service, against a shared --broker
//	go run ./examples/shop graph                the services and events as a Mermaid flowchart
//
// The environment variable SHOP_APP_NAME renames the app (default "shop").
// The name is the app's namespace on the broker, so two shops with different
// names share one broker without seeing each other's events; every process
// of one shop must use the same name.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/troupe-go/troupe"
	_ "github.com/troupe-go/troupe/contract" // adds the contract command
	"github.com/troupe-go/troupe/examples/shop/shop"
	_ "github.com/troupe-go/troupe/topology" // adds the graph command
)

func main() {
	rate, args, err := failRate(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(2)
	}
	os.Args = append(os.Args[:1], args...)
	shop.NewApp(troupe.Config{Name: os.Getenv("SHOP_APP_NAME")}, shop.FailRate(rate)).Main()
}

// failRate takes the shop's own flag, --fail-rate F, out of args and
// leaves the rest to troupe's standard command line.
func failRate(args []string) (float64, []string, error) {
	var rest []string
	rate := 0.0
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		if name != "--fail-rate" && name != "-fail-rate" {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return 0, nil, fmt.Errorf("--fail-rate needs a fraction between 0 and 1, such as 0.3")
			}
			i++
			value = args[i]
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, nil, fmt.Errorf("--fail-rate %q: give a fraction between 0 and 1, such as 0.3", value)
		}
		rate = f
	}
	return rate, rest, nil
}
