// Command fooddelivery runs the food-delivery example: an HTTP API to place
// orders, and the payment, restaurant, notification, delivery-partner and
// loyalty services that carry each order to a courier, or refund it when
// the restaurant cannot take it. See README.md.
//
//	go run ./examples/fooddelivery                          every service, embedded broker, http://localhost:8080
//	go run ./examples/fooddelivery --simulate 1000 --restaurant-failure-rate 0.2
//	go run ./examples/fooddelivery --services payment --http off --broker amqp://guest:guest@127.0.0.1:5672/
//	go run ./examples/fooddelivery graph --format mermaid   the choreography, success and compensation paths
//	go run ./examples/fooddelivery trace <order id>         an order's timeline from the journal (with --broker of a running system)
//
// It serves the dashboard at /ui/ (the URL with its admin token is logged
// at start), Prometheus metrics at /metrics, and journals every step.
//
// Besides troupe's standard flags (--broker, --data, --services, --http,
// --log-format, --log-level) it takes:
//
//	--restaurant-failure-rate F   share of orders the restaurants fail (0 to 1, default 0)
//	--payment-crash-rate F        share of charges and refunds whose first attempt fails after moving the money (default 0)
//	--simulate N                  place N generated orders, wait for them, print a reconciliation table, exit
//	--simulate-rate R             at most R orders per second (default 0: as fast as they are taken)
//
// The environment variable FOODDELIVERY_APP_NAME renames the app (default
// "fooddelivery"): its namespace on the broker, which every process of one
// system must share.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/troupe-go/troupe"
	_ "github.com/troupe-go/troupe/contract" // adds the contract command
	"github.com/troupe-go/troupe/dashboard"
	"github.com/troupe-go/troupe/examples/fooddelivery/fooddelivery"
	"github.com/troupe-go/troupe/examples/fooddelivery/payment"
	"github.com/troupe-go/troupe/examples/fooddelivery/restaurant"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/metrics"
	_ "github.com/troupe-go/troupe/ops"      // adds the tail, trace and dlq commands
	_ "github.com/troupe-go/troupe/topology" // adds the graph command
)

// exampleFlags are the flags of this program on top of troupe's.
type exampleFlags struct {
	failureRate  float64
	crashRate    float64
	simulate     int
	simulateRate float64
}

func (f *exampleFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&f.failureRate, "restaurant-failure-rate", 0, "share `F` (0 to 1) of orders the restaurants fail: half rejected, half unanswered for a while or for good")
	fs.Float64Var(&f.crashRate, "payment-crash-rate", 0, "share `F` (0 to 1) of first attempts at a charge or refund that fail right after moving the money, to show that redeliveries move none")
	fs.IntVar(&f.simulate, "simulate", 0, "place `N` generated orders, wait until each is assigned or refunded, print a reconciliation table and exit")
	fs.Float64Var(&f.simulateRate, "simulate-rate", 0, "with --simulate, place at most `R` orders per second (0: as fast as they are taken)")
}

func main() {
	var f exampleFlags
	rest, err := parseOwnFlags(os.Args[1:], &f, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		// Print troupe's usage too: its flags are this program's as well.
		rest = []string{"-h"}
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "fooddelivery: %v\n", err)
		os.Exit(2)
	}
	app := fooddelivery.NewApp(troupe.Config{Name: os.Getenv("FOODDELIVERY_APP_NAME")}, fooddelivery.Options{
		Restaurant: restaurant.Options{FailureRate: f.failureRate},
		Payment:    payment.Options{CrashRate: f.crashRate},
	})
	// See it run: the dashboard at /ui/ (the URL and its admin token are
	// logged at start), a journal of every step for its timelines and for
	// '<app> trace', and Prometheus metrics at /metrics.
	journal.Install(app)
	if err := metrics.Install(app); err != nil {
		fmt.Fprintln(os.Stderr, "fooddelivery:", err)
		os.Exit(1)
	}
	if _, err := dashboard.Install(app); err != nil {
		fmt.Fprintln(os.Stderr, "fooddelivery:", err)
		os.Exit(1)
	}
	if f.simulate == 0 {
		app.OnReady(func(context.Context) error {
			announce(app, os.Stderr)
			return nil
		})
		os.Args = append(os.Args[:1], rest...)
		app.Main()
		return
	}
	os.Exit(simulate(app, f, rest))
}

// parseOwnFlags takes this program's flags out of args and returns the
// others, for troupe. A flag may be written -name or --name, with its value
// after '=' or as the next argument. The first argument that is not a flag
// or a flag's value (a command such as graph) ends the flags.
func parseOwnFlags(args []string, f *exampleFlags, stderr io.Writer) ([]string, error) {
	fs := flag.NewFlagSet("fooddelivery", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	var mine, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			rest = append(rest, args[i:]...)
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" {
			fmt.Fprintln(stderr, "Flags of the food-delivery example, besides troupe's (below):")
			fs.PrintDefaults()
			fmt.Fprintln(stderr)
			return nil, flag.ErrHelp
		}
		if fs.Lookup(name) == nil {
			// troupe's flags all take a value.
			rest = append(rest, a)
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				rest = append(rest, args[i])
			}
			continue
		}
		mine = append(mine, a)
		if !hasValue && i+1 < len(args) {
			i++
			mine = append(mine, args[i])
		}
	}
	if err := fs.Parse(mine); err != nil {
		return nil, err
	}
	switch {
	case f.failureRate < 0 || f.failureRate > 1:
		return nil, fmt.Errorf("--restaurant-failure-rate %v: use a share from 0 to 1, such as 0.2", f.failureRate)
	case f.crashRate < 0 || f.crashRate > 1:
		return nil, fmt.Errorf("--payment-crash-rate %v: use a share from 0 to 1, such as 0.05", f.crashRate)
	case f.simulate < 0:
		return nil, fmt.Errorf("--simulate %d: use a number of orders, at least 1", f.simulate)
	case f.simulateRate < 0:
		return nil, fmt.Errorf("--simulate-rate %v: use orders per second, or 0 for no limit", f.simulateRate)
	}
	return rest, nil
}

// httpOff reports whether troupe's arguments turn the HTTP server off.
func httpOff(args []string) bool {
	for i, a := range args {
		switch strings.TrimLeft(a, "-") {
		case "http=off":
			return true
		case "http":
			if i+1 < len(args) && args[i+1] == "off" {
				return true
			}
		}
	}
	return false
}

// announce prints the URLs to try, once the app serves HTTP; a process
// without routes (--http off) prints nothing.
func announce(app *troupe.App, w io.Writer) {
	addr := app.HTTPAddr()
	if addr == "" {
		return
	}
	base := "http://" + addr
	fmt.Fprintf(w, `
food delivery is running at %[1]s — try:
  curl -si -XPOST %[1]s/orders -H 'Idempotency-Key: demo-1' -d '{"customer":"ada","restaurant":"napoli","items":[{"name":"margherita","qty":2,"price_cents":950}]}'
  curl -s %[1]s/orders/<id>                 status and timeline
  curl -s %[1]s/orders                      totals and the newest orders
  curl -s %[1]s/ledger                      the payment service's books
  curl -s '%[1]s/notifications?customer=ada'
  curl -s %[1]s/loyalty/ada
  open %[1]s/ui/                            the dashboard (its admin token is in the log above)

`, base)
}

// simulate runs the app, places the orders, prints the reconciliation
// table, stops the app and returns the exit status: 0 when every order
// ended in one terminal state and the money reconciles, 1 otherwise.
func simulate(app *troupe.App, f exampleFlags, args []string) int {
	if httpOff(args) {
		fmt.Fprintln(os.Stderr, "fooddelivery: --simulate places orders over HTTP: leave out --http off")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runCtx, stopApp := context.WithCancel(ctx)
	defer stopApp()
	ready := make(chan string, 1)
	app.OnReady(func(context.Context) error {
		ready <- app.HTTPAddr()
		return nil
	})
	runErr := make(chan error, 1)
	go func() { runErr <- app.RunCommand(runCtx, args, os.Stderr) }()

	var addr string
	select {
	case addr = <-ready:
	case err := <-runErr:
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0 // stopped by a signal before it was ready
	}
	if addr == "" {
		stopApp()
		<-runErr
		fmt.Fprintln(os.Stderr, "fooddelivery: --simulate needs the order service's HTTP routes in this process (leave out --http off, and run the order service here)")
		return 2
	}
	fmt.Fprintf(os.Stderr, "simulate: placing %d orders at http://%s, restaurant failure rate %v\n", f.simulate, addr, f.failureRate)
	rep, err := fooddelivery.Simulate(ctx, fooddelivery.Simulation{
		BaseURL: "http://" + addr, Orders: f.simulate, Rate: f.simulateRate, Progress: os.Stderr,
	})
	status := 0
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		status = 1
	} else {
		rep.WriteTable(os.Stdout)
		if !rep.OK() {
			status = 1
		}
	}
	stopApp()
	if err := <-runErr; err != nil {
		fmt.Fprintln(os.Stderr, err)
		status = 1
	}
	return status
}
