package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

const dlqUsage = `dlq list [service.subscription]
       dlq show <service.subscription> <id>
       dlq replay <service.subscription> <id>|--all
       dlq discard <service.subscription> <id>`

// DLQ is the dlq command, registered when this package is imported:
//
//	<app> dlq list [service.subscription]               how many dead letters each subscription has, or one's letters
//	<app> dlq show <service.subscription> <id>          one dead letter: error, attempts, times, attributes and data
//	<app> dlq replay <service.subscription> <id>|--all  send one or all back to that subscription only
//	<app> dlq discard <service.subscription> <id>       delete one for good
//
// each with --broker URL and --data DIR. replay --all shows its progress on
// stderr when stderr is a terminal. A subscription the app does not
// declare, or a missing or extra argument, is a usage error; an unknown
// dead-letter id is an error that says how to list the ids.
func DLQ(ctx context.Context, app *troupe.App, args []string, stdout, stderr io.Writer) error {
	top := newCommand(app, "dlq", dlqUsage, "Lists, shows, replays or discards the dead letters of the app's subscriptions.", stderr)
	if len(args) == 0 {
		return top.usageErr("name a subcommand: list, show, replay or discard")
	}
	switch args[0] {
	case "-h", "-help", "--help":
		top.fs.Usage()
		return flag.ErrHelp
	case "list":
		return dlqList(ctx, app, args[1:], stdout, stderr)
	case "show":
		return dlqShow(ctx, app, args[1:], stdout, stderr)
	case "replay":
		return dlqReplay(ctx, app, args[1:], stdout, stderr)
	case "discard":
		return dlqDiscard(ctx, app, args[1:], stdout, stderr)
	}
	return top.usageErr("unknown subcommand %q: use list, show, replay or discard", args[0])
}

func dlqList(ctx context.Context, app *troupe.App, args []string, stdout, stderr io.Writer) error {
	c := newCommand(app, "dlq list", "dlq list [service.subscription] [--broker URL] [--data DIR]",
		"Without a subscription, prints how many dead letters each subscription holds; with one, lists its dead letters, oldest first.", stderr)
	pos, err := c.parse(args, 0, 1)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		if err := c.checkSubscription(pos[0]); err != nil {
			return err
		}
	}
	disconnect, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer disconnect()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	if len(pos) == 0 {
		fmt.Fprintln(tw, "SUBSCRIPTION\tDEAD LETTERS")
		for _, s := range subscriptions(app) {
			dls, err := app.DeadLetters(ctx, s, 0)
			if err != nil {
				return fmt.Errorf("%s dlq list: %s: %w", app.Name(), s, err)
			}
			fmt.Fprintf(tw, "%s\t%d\n", s, len(dls))
		}
		return tw.Flush()
	}
	dls, err := app.DeadLetters(ctx, pos[0], 0)
	if err != nil {
		return fmt.Errorf("%s dlq list: %w", app.Name(), err)
	}
	if len(dls) == 0 {
		fmt.Fprintf(stdout, "%s has no dead letters\n", pos[0])
		return nil
	}
	fmt.Fprintln(tw, "ID\tTYPE\tREASON\tATTEMPTS\tDEAD AT\tERROR")
	for _, d := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Message.Type, d.Reason, d.Attempts,
			d.DeadAt.Local().Format(time.DateTime), oneLine(d.Error, 60))
	}
	return tw.Flush()
}

func dlqShow(ctx context.Context, app *troupe.App, args []string, stdout, stderr io.Writer) error {
	c := newCommand(app, "dlq show", "dlq show <service.subscription> <id> [--broker URL] [--data DIR]",
		"Prints one dead letter in full: why it failed, its attempts and times, the event's attributes and data.", stderr)
	pos, disconnect, err := c.openLetter(ctx, args)
	if err != nil {
		return err
	}
	defer disconnect()
	dls, err := app.DeadLetters(ctx, pos[0], 0)
	if err != nil {
		return fmt.Errorf("%s dlq show: %w", app.Name(), err)
	}
	for _, d := range dls {
		if d.ID == pos[1] {
			return writeDeadLetter(stdout, d)
		}
	}
	return notFound(app, "show", pos[0], pos[1])
}

func notFound(app *troupe.App, op, sub, id string) error {
	return notFoundError(fmt.Sprintf("%s dlq %s: %s has no dead letter %q; list its ids with: %s dlq list %s",
		app.Name(), op, sub, id, app.Name(), sub))
}

// notFoundError reads as a sentence and matches transport.ErrNotFound.
type notFoundError string

func (e notFoundError) Error() string { return string(e) }
func (e notFoundError) Unwrap() error { return transport.ErrNotFound }

func writeDeadLetter(w io.Writer, d troupe.DeadLetter) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	m := d.Message
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("id", d.ID)
	row("subscription", d.Subscription)
	row("reason", d.Reason)
	row("attempts", d.Attempts)
	row("replays", d.Replays)
	row("first attempt", d.FirstAttempt.Local().Format(time.RFC3339))
	row("last attempt", d.LastAttempt.Local().Format(time.RFC3339))
	row("dead at", d.DeadAt.Local().Format(time.RFC3339))
	row("event id", m.ID)
	row("type", m.Type)
	row("source", m.Source)
	row("time", m.Time.Local().Format(time.RFC3339Nano))
	row("correlation", m.CorrelationID)
	if m.CausationID != "" {
		row("causation", m.CausationID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "error:\n  %s\n", strings.ReplaceAll(d.Error, "\n", "\n  "))
	var pretty bytes.Buffer
	if json.Indent(&pretty, m.Data, "  ", "  ") == nil {
		_, err := fmt.Fprintf(w, "data:\n  %s\n", pretty.String())
		return err
	}
	_, err := fmt.Fprintf(w, "data (%d bytes, not JSON):\n  %q\n", len(m.Data), m.Data)
	return err
}

func dlqReplay(ctx context.Context, app *troupe.App, args []string, stdout, stderr io.Writer) error {
	c := newCommand(app, "dlq replay", "dlq replay <service.subscription> <id>|--all [--broker URL] [--data DIR]",
		"Sends dead letters back to the subscription that failed them, and only to it, as fresh deliveries.", stderr)
	all := c.fs.Bool("all", false, "replay every dead letter of the subscription")
	pos, err := c.parse(args, 1, 2)
	if err != nil {
		return err
	}
	switch {
	case *all && len(pos) == 2:
		return c.usageErr("give an id or --all, not both")
	case !*all && len(pos) == 1:
		return c.usageErr("give the id of the dead letter to replay, or --all")
	}
	if err := c.checkSubscription(pos[0]); err != nil {
		return err
	}
	disconnect, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer disconnect()
	sub := pos[0]
	if !*all {
		if err := app.Replay(ctx, sub, pos[1]); err != nil {
			if errors.Is(err, transport.ErrNotFound) {
				return notFound(app, "replay", sub, pos[1])
			}
			return fmt.Errorf("%s dlq replay: %w", app.Name(), err)
		}
		fmt.Fprintf(stdout, "replayed %s to %s\n", pos[1], sub)
		return nil
	}
	dls, err := app.DeadLetters(ctx, sub, 0)
	if err != nil {
		return fmt.Errorf("%s dlq replay: %w", app.Name(), err)
	}
	progress := newProgress(stderr, len(dls), "replaying "+sub)
	replayed, gone := 0, 0
	for i, d := range dls {
		err := app.Replay(ctx, sub, d.ID)
		switch {
		case errors.Is(err, transport.ErrNotFound):
			gone++ // replayed or discarded by someone else meanwhile
		case err != nil:
			progress.done()
			return fmt.Errorf("%s dlq replay --all: after %d of %d: %w", app.Name(), replayed, len(dls), err)
		default:
			replayed++
		}
		progress.set(i + 1)
	}
	progress.done()
	fmt.Fprintf(stdout, "replayed %d dead letters to %s", replayed, sub)
	if gone > 0 {
		fmt.Fprintf(stdout, " (%d were gone already)", gone)
	}
	fmt.Fprintln(stdout)
	return nil
}

func dlqDiscard(ctx context.Context, app *troupe.App, args []string, stdout, stderr io.Writer) error {
	c := newCommand(app, "dlq discard", "dlq discard <service.subscription> <id> [--broker URL] [--data DIR]",
		"Deletes one dead letter for good.", stderr)
	pos, disconnect, err := c.openLetter(ctx, args)
	if err != nil {
		return err
	}
	defer disconnect()
	if err := app.Discard(ctx, pos[0], pos[1]); err != nil {
		if errors.Is(err, transport.ErrNotFound) {
			return notFound(app, "discard", pos[0], pos[1])
		}
		return fmt.Errorf("%s dlq discard: %w", app.Name(), err)
	}
	fmt.Fprintf(stdout, "discarded %s of %s\n", pos[1], pos[0])
	return nil
}

// progress draws "label 12/40" on one terminal line, at most ten times a
// second; on anything but a terminal it draws nothing, so logs and pipes
// stay clean.
type progress struct {
	w     io.Writer
	on    bool
	total int
	label string
	last  time.Time
}

func newProgress(w io.Writer, total int, label string) *progress {
	return &progress{w: w, on: isTerminal(w) && total > 0, total: total, label: label}
}

func (p *progress) set(n int) {
	if !p.on || (n < p.total && time.Since(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r%s %d/%d", p.label, n, p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

// openLetter parses the arguments "<service.subscription> <id>" of a
// command about one dead letter, checks the subscription, and connects.
func (c *command) openLetter(ctx context.Context, args []string) (pos []string, disconnect func(), err error) {
	if pos, err = c.parse(args, 2, 2); err != nil {
		return nil, nil, err
	}
	if err := c.checkSubscription(pos[0]); err != nil {
		return nil, nil, err
	}
	if disconnect, err = c.connect(ctx); err != nil {
		return nil, nil, err
	}
	return pos, disconnect, nil
}
