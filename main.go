package troupe

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
)

// Main is the whole main function of an app binary: it reads the standard
// command line, runs the app until SIGINT or SIGTERM, drains running handlers
// and exits. On a mistake it prints one line that says what to do and exits
// with status 1 (2 for a bad flag).
//
// Flags, each overriding the Config field of the same meaning:
//
//	--broker URL      embedded: (default), embedded:?listen=ADDR, nats://host:4222, amqp://user:pass@host:5672/vhost
//	--data DIR        data directory of the embedded broker (default .troupe/<app>)
//	--services a,b    run only these services (default: all)
//	--http ADDR       HTTP address (default localhost:8080 when a service has routes; off to disable)
//
// A first argument naming a command registered with [RegisterCommand] runs
// that command instead of the app ("<app> graph" when the binary imports the
// topology package).
func (a *App) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := a.RunCommand(ctx, os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// RunCommand is Main without the process around it: it parses args (without
// the program name), then runs the app until ctx ends. Usage errors are
// written to stderr and returned wrapped. When args[0] names a registered
// command, it runs that command instead, with os.Stdout as its output.
func (a *App) RunCommand(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 {
		if c, ok := lookupCommand(args[0]); ok {
			return c.run(ctx, a, args[1:], os.Stdout, stderr)
		}
	}
	fs := flag.NewFlagSet(a.cfg.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", a.cfg.Broker, "broker `URL`: embedded:, embedded:?listen=127.0.0.1:4222, nats://host:4222, amqp://user:pass@host:5672/vhost (default $TROUPE_BROKER or embedded:)")
	data := fs.String("data", a.cfg.DataDir, "data `DIR` of the embedded broker (default $TROUPE_DATA or .troupe/<app>)")
	services := fs.String("services", strings.Join(a.cfg.Services, ","), "comma-separated `names` of the services to run here (default all)")
	httpAddr := fs.String("http", a.cfg.HTTPAddr, "HTTP listen `ADDR` for the services' routes, or off (default localhost:8080 when a service has routes)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n\nRuns the %s app: services %s.\n\nFlags:\n", a.cfg.Name, a.cfg.Name, strings.Join(a.serviceNames(), ", "))
		fs.PrintDefaults()
		fmt.Fprint(stderr, commandUsage())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q; run with -h for usage\n", a.cfg.Name, fs.Arg(0))
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	a.cfg.Broker, a.cfg.DataDir, a.cfg.HTTPAddr = *broker, *data, *httpAddr
	a.cfg.Services = nil
	for _, s := range strings.Split(*services, ",") {
		if s = strings.TrimSpace(s); s != "" {
			a.cfg.Services = append(a.cfg.Services, s)
		}
	}
	return a.Run(ctx)
}
