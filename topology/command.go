package topology

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/troupe-go/troupe"
)

func init() {
	troupe.RegisterCommand("graph", "print the app's topology (--format "+strings.Join(Formats, "|")+") and exit", Command)
}

// Command is the graph command of an app binary, registered with
// [troupe.RegisterCommand] when this package is imported:
//
//	<app> graph [--format mermaid|dot|json|asyncapi]
//
// It writes the graph of app's declaration to stdout in the format (default
// mermaid) and returns, without connecting to a broker. An unknown format or
// argument is a usage error: one line on stderr, and exit status 2 from
// [troupe.App.Main].
func Command(_ context.Context, app *troupe.App, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(app.Name()+" graph", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", Formats[0], "output `format`: "+strings.Join(Formats, ", "))
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s graph [--format %s]\n\nPrints the services, topics, subscriptions and dead-letter stores of the %s app and how events flow between them, then exits.\n\nFlags:\n", app.Name(), strings.Join(Formats, "|"), app.Name())
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return troupe.UsageErrorf("graph: %v", err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s graph: unexpected argument %q; run with -h for usage\n", app.Name(), fs.Arg(0))
		return troupe.UsageErrorf("graph: unexpected argument %q", fs.Arg(0))
	}
	if !slices.Contains(Formats, *format) {
		fmt.Fprintf(stderr, "%s graph: unknown format %q: use one of %s\n", app.Name(), *format, strings.Join(Formats, ", "))
		return troupe.UsageErrorf("graph: unknown format %q", *format)
	}
	return FromApp(app).Render(stdout, *format)
}
