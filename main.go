package troupe

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/troupe-go/troupe/transport"
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
//	--log-format F    auto (default; color on a terminal, text otherwise), text, color or json; env TROUPE_LOG_FORMAT
//	--log-level L     debug, info (default), warn or error; env TROUPE_LOG_LEVEL
//
// The log flags choose the app's logger, writing to stderr (see [NewLogger]),
// only when the app has none of its own: an explicit [Config.Logger], or a
// logger the program installed with slog.SetDefault before [New], wins, and
// the flags are then only checked. Main also makes the logger it built
// slog's default, so the program's own slog calls are written the same way;
// the log package keeps writing as before, and so do loggers the program
// took from slog.Default() before Main (take [App.Logger] in a handler
// instead). An unknown format or level exits with status 2.
//
// A first argument naming a command registered with [RegisterCommand] runs
// that command instead of the app ("<app> graph" when the binary imports the
// topology package).
func (a *App) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := a.runCommand(ctx, os.Args[1:], os.Stderr, true)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, ErrUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// ErrUsage marks a mistake on the command line: a bad flag or argument of
// [App.RunCommand], or a command's [UsageErrorf]. The mistake was already
// written to stderr; [App.Main] exits with status 2 for it.
var ErrUsage = errors.New("usage")

// RunCommand is Main without the process around it: it parses args (without
// the program name), then runs the app until ctx ends. Usage errors are
// written to stderr and returned wrapped. When args[0] names a registered
// command, it runs that command instead, with os.Stdout as its output.
// Logs go to stderr in the form --log-format and --log-level choose, unless
// the app has a logger of its own (see [App.Main]); unlike Main, RunCommand
// leaves slog's default logger alone.
func (a *App) RunCommand(ctx context.Context, args []string, stderr io.Writer) error {
	return a.runCommand(ctx, args, stderr, false)
}

// runCommand is RunCommand; setDefault makes the logger built from the log
// flags slog's default too, which only a whole process (Main) should do.
func (a *App) runCommand(ctx context.Context, args []string, stderr io.Writer, setDefault bool) error {
	if len(args) > 0 {
		if c, ok := lookupCommand(args[0]); ok {
			return c.run(ctx, a, args[1:], os.Stdout, stderr)
		}
	}
	fs := flag.NewFlagSet(a.cfg.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", a.cfg.Broker, "broker `URL`: "+strings.Join(transport.Examples(), ", ")+" (default $TROUPE_BROKER or "+DefaultBroker+")")
	data := fs.String("data", a.cfg.DataDir, "data `DIR` of the embedded broker (default $TROUPE_DATA or .troupe/<app>)")
	services := fs.String("services", strings.Join(a.cfg.Services, ","), "comma-separated `names` of the services to run here (default all)")
	httpAddr := fs.String("http", a.cfg.HTTPAddr, "HTTP listen `ADDR` for the services' routes, or off (default "+DefaultHTTPAddr+" when a service has routes)")
	logFmt := fs.String("log-format", "", "log `format`: auto (color on a terminal, text otherwise), text, color or json (default $TROUPE_LOG_FORMAT or auto)")
	logLvl := fs.String("log-level", "", "lowest log `level` written: debug, info, warn or error (default $TROUPE_LOG_LEVEL or info)")
	a.mu.Lock()
	extra := slices.Clone(a.flagFns)
	a.mu.Unlock()
	for _, register := range extra {
		register(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n\nRuns the %s app: services %s.\n\nFlags:\n", a.cfg.Name, a.cfg.Name, strings.Join(a.serviceNames(), ", "))
		fs.PrintDefaults()
		fmt.Fprint(stderr, commandUsage())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q; run with -h for usage\n", a.cfg.Name, fs.Arg(0))
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	if err := a.applyLogFlags(fs, *logFmt, *logLvl, stderr, setDefault); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", a.cfg.Name, err)
		return fmt.Errorf("%w: %v", ErrUsage, err)
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

// applyLogFlags builds the logger --log-format and --log-level ask for
// (falling back to $TROUPE_LOG_FORMAT and $TROUPE_LOG_LEVEL) and makes it
// the app's, unless the app was given a logger: Config.Logger, or a default
// the program set with slog.SetDefault before New. Bad values are errors
// either way, so a typo never waits for the day the logger is dropped.
//
// It sets a.log before Start, and everything in the app reads a.log when it
// logs (Start, Stop, handlers, the broker opened at Start), so the whole
// run uses the new logger.
func (a *App) applyLogFlags(fs *flag.FlagSet, format, level string, stderr io.Writer, setDefault bool) error {
	formatName, levelName := "--log-format", "--log-level"
	if format == "" {
		format, formatName = os.Getenv("TROUPE_LOG_FORMAT"), "$TROUPE_LOG_FORMAT"
	}
	if level == "" {
		level, levelName = os.Getenv("TROUPE_LOG_LEVEL"), "$TROUPE_LOG_LEVEL"
	}
	// Checked here, with the flag or variable named, so the message says
	// where the bad value came from.
	if _, err := logFormat(format, formatName); err != nil {
		return err
	}
	if _, err := logLevel(level, levelName); err != nil {
		return err
	}
	l, err := NewLogger(stderr, format, level)
	if err != nil {
		return err
	}
	if a.cfg.Logger != nil || a.log != stdDefaultLogger {
		var given []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "log-format" || f.Name == "log-level" {
				given = append(given, "--"+f.Name)
			}
		})
		if len(given) > 0 {
			a.log.Warn("ignoring "+strings.Join(given, " and ")+": the app logs to the logger the program gave it (Config.Logger or slog.SetDefault)", "app", a.cfg.Name)
		}
		return nil
	}
	a.log = l
	if setDefault {
		// slog.SetDefault also sends the log package's output to l. Loggers
		// taken from slog.Default() before now write through the log
		// package, and through l they would print their level twice and log
		// errors as INFO; so the log package keeps its writer and flags.
		w, flags := log.Writer(), log.Flags()
		slog.SetDefault(l)
		log.SetOutput(w)
		log.SetFlags(flags)
	}
	return nil
}

// Flags registers flags of the program's own on the app's standard command
// line ([App.Main], [App.RunCommand]): register defines them on fs, which
// also holds troupe's flags, so they are parsed together, listed together
// by -h, and a bad value is a usage error (exit status 2). Their values are
// set once Main has parsed the command line: read them in [App.OnStart] or
// later. Call it before Main.
func (a *App) Flags(register func(fs *flag.FlagSet)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flagFns = append(a.flagFns, register)
}
