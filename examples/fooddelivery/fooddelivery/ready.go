package fooddelivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/order"
)

// ready makes the app, once it is ready, print the URLs to try, or run
// the simulation opts asks for; and makes its stop report how the
// simulation ended.
func ready(app *troupe.App, opts *Options) {
	var (
		mu  sync.Mutex
		sim *simulation
	)
	app.OnReady(func(context.Context) error {
		if opts.Simulate == 0 {
			announce(app, opts.Stderr)
			return nil
		}
		addr := app.HTTPAddr()
		switch {
		case !app.Runs(order.ServiceName):
			return usage(opts, "--simulate places orders through the order service: run it in this process (leave it in --services)")
		case addr == "":
			return usage(opts, "--simulate places orders over HTTP: leave out --http off")
		}
		mu.Lock()
		defer mu.Unlock()
		sim = simulate(app, opts, "http://"+addr)
		return nil
	})
	app.OnStop(func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if sim == nil {
			return nil
		}
		<-sim.done
		return sim.err
	})
}

// announce prints the URLs to try, once the app serves HTTP; a process
// without routes (--http off) prints nothing.
func announce(app *troupe.App, w io.Writer) {
	addr := app.HTTPAddr()
	if addr == "" || w == nil {
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

// simulation is a --simulate run inside the app's process.
type simulation struct {
	done chan struct{}
	err  error // set before done closes: nil when the run reconciled
}

// simulate runs the simulation opts asks for against base, prints its
// table, and stops the process. The run's state is kept in the data
// directory, so a run killed midway resumes when the program starts again
// with the same arguments.
func simulate(app *troupe.App, opts *Options, base string) *simulation {
	s := &simulation{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-app.Stopping(): // Ctrl-C, or the end of the run
		case <-s.done:
		}
		cancel()
	}()
	go func() {
		defer close(s.done)
		progress := stderr(opts)
		fmt.Fprintf(progress, "simulate: placing %d orders at %s, restaurant failure rate %v, payment crash rate %v\n",
			opts.Simulate, base, opts.Restaurant.FailureRate, opts.Payment.CrashRate)
		rep, err := Simulate(ctx, Simulation{
			BaseURL: base, Orders: opts.Simulate, Rate: opts.SimulateRate, Progress: progress,
			Resume: filepath.Join(app.DataDir(), "simulation.json"),
		})
		switch {
		case ctx.Err() != nil:
			s.err = errors.New("simulate: stopped before the run ended; start the program again with the same arguments to finish the run")
			return
		case err != nil:
			s.err = err
		default:
			if opts.Stdout != nil {
				rep.WriteTable(opts.Stdout)
			}
			if !rep.OK() {
				s.err = fmt.Errorf("simulate: run %s did not reconcile: %d of %d orders not in exactly one terminal state, or the money or the messages do not add up (see the table)",
					rep.Run, rep.Placed-rep.Assigned-rep.Refunded+rep.Conflicts, rep.Placed)
			}
		}
		// The run is over: stop as Ctrl-C would, so App.Main drains the
		// app and exits, with the status s.err says.
		if err := stopProcess(); err != nil {
			fmt.Fprintf(progress, "simulate: the run is over, but the app could not stop itself (%v): stop it with Ctrl-C\n", err)
		}
	}()
	return s
}

// stopProcess sends this process SIGTERM.
func stopProcess() error {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return err
	}
	return p.Signal(syscall.SIGTERM)
}
