package contract

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
	troupe.RegisterCommand("contract", "export the app's event contract, or check it against baselines (export | check --against FILE...)", Command)
}

// againstFlag collects the files of repeated --against flags.
type againstFlag []string

func (a *againstFlag) String() string { return strings.Join(*a, ",") }

func (a *againstFlag) Set(v string) error {
	*a = append(*a, v)
	return nil
}

// Command is the contract command of an app binary, registered with
// [troupe.RegisterCommand] when this package is imported:
//
//	<app> contract export
//	<app> contract check --against FILE [FILE...] [--against FILE] [--format text|json|markdown]
//
// export writes the contract of the app's declaration ([FromApp],
// [Contract.Write]) to stdout. check compares it with the baselines
// ([Check]) and writes the report to stdout in the format (default text).
// Neither connects to a broker.
//
// Exit status (through [troupe.App.Main]): 0 when every change is
// compatible; 1 when a change is breaking (ErrBreaking) or the declaration
// cannot be exported; 2 for a mistake in the arguments (a missing
// subcommand or --against, an unknown format or argument) or in a baseline
// (unreadable, not a contract, of another app, two earlier releases), with
// one line on stderr saying what to do.
func Command(_ context.Context, app *troupe.App, args []string, stdout, stderr io.Writer) error {
	name := app.Name() + " contract"
	usage := func() {
		fmt.Fprintf(stderr, `Usage:
  %[1]s export
        write the event contract of %[2]s (an AsyncAPI 3.0 document with troupe's extensions) to stdout
  %[1]s check --against FILE [FILE...] [--format %[3]s]
        compare it with baselines: the app's earlier export and other programs' exports;
        exit status 1 when a change is breaking

`, name, app.Name(), strings.Join(Formats, "|"))
	}
	if len(args) == 0 {
		fmt.Fprintf(stderr, "%s: say export or check; run with -h for usage\n", name)
		return troupe.UsageErrorf("contract: no subcommand")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage()
		return flag.ErrHelp
	case "export":
		return export(app, name+" export", args[1:], stdout, stderr)
	case "check":
		return check(app, name+" check", args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "%s: unknown subcommand %q: say export or check\n", name, args[0])
	return troupe.UsageErrorf("contract: unknown subcommand %q", args[0])
}

func export(app *troupe.App, name string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nWrites the event contract of %s to stdout: the topics it publishes with their schemas, what each subscription reads, and the upcasters. Commit it as the baseline of the next release's check.\n", name, app.Name())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return troupe.UsageErrorf("%s: %v", name, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q; run with -h for usage\n", name, fs.Arg(0))
		return troupe.UsageErrorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	c, err := FromApp(app)
	if err != nil {
		return err
	}
	return c.Write(stdout)
}

func check(app *troupe.App, name string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var against againstFlag
	fs.Var(&against, "against", "a baseline contract `FILE`: the app's earlier export, or another program's; repeat it, or list more files after it")
	format := fs.String("format", Formats[0], "report `format`: "+strings.Join(Formats, ", "))
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s --against FILE [FILE...] [--format %s]\n\nCompares the event contract of %s with the baselines and reports every change as compatible or breaking, naming the subscriptions a breaking change breaks. Exit status 1 when a change is breaking, 2 for bad arguments or files.\n\nFlags:\n", name, strings.Join(Formats, "|"), app.Name())
		fs.PrintDefaults()
	}
	// Files may follow --against FILE without another --against, so
	// parse again after each run of them.
	rest := args
	var files []string
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return troupe.UsageErrorf("%s: %v", name, err)
		}
		rest = fs.Args()
		for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			files = append(files, rest[0])
			rest = rest[1:]
		}
		if len(rest) == 0 {
			break
		}
	}
	if len(against) == 0 {
		if len(files) > 0 {
			fmt.Fprintf(stderr, "%s: unexpected argument %q: give baselines with --against FILE\n", name, files[0])
			return troupe.UsageErrorf("%s: unexpected argument %q", name, files[0])
		}
		fmt.Fprintf(stderr, "%s: --against FILE is required: the app's earlier export (%s contract export > FILE), or another program's\n", name, app.Name())
		return troupe.UsageErrorf("%s: no --against", name)
	}
	if !slices.Contains(Formats, *format) {
		fmt.Fprintf(stderr, "%s: unknown format %q: use one of %s\n", name, *format, strings.Join(Formats, ", "))
		return troupe.UsageErrorf("%s: unknown format %q", name, *format)
	}
	var baselines []*Contract
	for _, f := range append([]string(against), files...) {
		b, err := ReadFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return troupe.UsageErrorf("%s: %v", name, err)
		}
		baselines = append(baselines, b)
	}
	cur, err := FromApp(app)
	if err != nil {
		return err
	}
	report, err := Check(cur, baselines...)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return troupe.UsageErrorf("%s: %v", name, err)
	}
	if err := report.Write(stdout, *format); err != nil {
		return err
	}
	if report.Breaking > 0 {
		return fmt.Errorf("%s: %w (%d)", name, ErrBreaking, report.Breaking)
	}
	return nil
}
