package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/journal"
)

// Trace is the trace command, registered when this package is imported:
//
//	<app> trace <correlation-id> [--json] [--broker URL] [--data DIR]
//
// It reads one business transaction from the app's journal (see package
// journal) and prints it as a waterfall: one line per publish and per
// handling attempt, in causal order, indented under what caused it, with
// the time since the first entry, the outcome, the duration and the error.
// With --json it prints the entries as JSON objects, one per line, with
// their depth. A missing id is a usage error; an id without entries, or an
// app that never wrote a journal, is an error saying so.
func Trace(ctx context.Context, app *troupe.App, args []string, stdout, stderr io.Writer) error {
	c := newCommand(app, "trace", "trace <correlation-id> [--json] [--broker URL] [--data DIR]",
		"Prints the path of one business transaction from the app's journal: every publish and handling attempt, in causal order.", stderr)
	asJSON := c.fs.Bool("json", false, "print the entries as JSON objects, one per line")
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	disconnect, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer disconnect()
	entries, err := journal.Trace(ctx, app, pos[0])
	if err != nil {
		if errors.Is(err, journal.ErrNotFound) {
			return fmt.Errorf("%s trace: %w; find ids with: %s tail", app.Name(), err, app.Name())
		}
		return fmt.Errorf("%s trace: %w", app.Name(), err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	return writeTrace(stdout, pos[0], entries)
}

// writeTrace prints entries, as Trace orders them, as a waterfall.
func writeTrace(w io.Writer, correlation string, entries []journal.Entry) error {
	start, end := entries[0].Time, entries[0].Time
	for _, e := range entries {
		start = minTime(start, e.Time)
		end = maxTime(end, e.Time.Add(e.Duration))
	}
	fmt.Fprintf(w, "correlation %s: %d entries over %s\n", correlation, len(entries), round(end.Sub(start)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range entries {
		var what string
		if e.IsPublish() {
			by := e.Service
			if by == "" {
				by = "(outside services)"
			}
			what = fmt.Sprintf("%s published by %s", e.Type, by)
		} else {
			what = fmt.Sprintf("%s attempt %d", e.Subscription, e.Attempt)
			if e.Replays > 0 {
				what += fmt.Sprintf(" (replay %d)", e.Replays)
			}
		}
		errText := ""
		if e.Error != "" {
			errText = oneLine(e.Error, 100)
		}
		fmt.Fprintf(tw, "+%s\t%s%s\t%s\t%s\t%s\n", round(e.Time.Sub(start)), strings.Repeat("  ", e.Depth), what, e.Outcome, round(e.Duration), errText)
	}
	return tw.Flush()
}

// round shows durations to the millisecond, and below one to the
// microsecond.
func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
