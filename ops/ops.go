// Package ops gives every app binary that imports it the commands an
// operator needs to see and mend a running choreography:
//
//	<app> tail [--topic t] [--correlation id] [--json]   events as they are published
//	<app> trace <correlation-id> [--json]                one transaction's path, from the journal
//	<app> dlq list [service.subscription]                dead letters, per subscription
//	<app> dlq show <service.subscription> <id>           one dead letter in full
//	<app> dlq replay <service.subscription> <id>|--all   send them back to their subscription
//	<app> dlq discard <service.subscription> <id>        delete one for good
//
// Import it for its side effect, next to the app's main:
//
//	import _ "github.com/troupe-go/troupe/ops"
//
// Every command takes --broker and --data as the app does (default: the
// app's Config, then $TROUPE_BROKER and $TROUPE_DATA, then the embedded
// broker) and connects with [troupe.App.StartClient], so it runs no
// service and takes no events from anyone. The embedded broker's files
// belong to one process at a time: to reach a running embedded app, start
// it with --broker 'embedded:?listen=127.0.0.1:4333' and pass the
// commands --broker nats://127.0.0.1:4333.
//
// trace reads the journal, which the app writes when it calls
// journal.Install. A mistake in the arguments prints one line saying what
// to do and exits with status 2; a failure (no broker, an unknown
// correlation or dead-letter id) exits with status 1.
package ops

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
)

func init() {
	troupe.RegisterCommand("tail", "print events as they are published (--topic, --correlation, --json)", Tail)
	troupe.RegisterCommand("trace", "print one business transaction's path from the journal", Trace)
	troupe.RegisterCommand("dlq", "list, show, replay or discard dead letters", DLQ)
}

// stopTimeout bounds disconnecting from the broker when a command ends.
const stopTimeout = 10 * time.Second

// command holds what every command shares: its name for messages, its
// flags and the app.
type command struct {
	app    *troupe.App
	name   string // "tail", "dlq replay"
	usage  string // the synopsis after "<app> "
	about  string
	fs     *flag.FlagSet
	broker *string
	data   *string
	stderr io.Writer
}

func newCommand(app *troupe.App, name, usage, about string, stderr io.Writer) *command {
	c := &command{app: app, name: name, usage: usage, about: about, stderr: stderr}
	c.fs = flag.NewFlagSet(app.Name()+" "+name, flag.ContinueOnError)
	c.fs.SetOutput(stderr)
	c.broker = c.fs.String("broker", "", "broker `URL` of the app: nats://host:4222, amqp://user:pass@host:5672/vhost, embedded: (default: the app's, $TROUPE_BROKER, embedded:)")
	c.data = c.fs.String("data", "", "data `DIR` of the embedded broker (default: the app's, $TROUPE_DATA, .troupe/<app>)")
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s %s\n\n%s\n\nFlags:\n", app.Name(), usage, about)
		c.fs.PrintDefaults()
	}
	return c
}

// parse reads flags anywhere among the arguments and returns the others.
// It checks that there are between min and max of them.
func (c *command) parse(args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, troupe.UsageErrorf("%s: %v", c.name, err) // flag printed the line
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	switch {
	case len(pos) < min:
		return nil, c.usageErr("missing arguments; usage: %s %s", c.app.Name(), c.usage)
	case len(pos) > max:
		return nil, c.usageErr("unexpected argument %q; usage: %s %s", pos[max], c.app.Name(), c.usage)
	}
	return pos, nil
}

// usageErr prints one line to stderr and returns the usage error that
// makes the binary exit with status 2.
func (c *command) usageErr(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(c.stderr, "%s %s: %s\n", c.app.Name(), c.name, msg)
	return troupe.UsageErrorf("%s: %s", c.name, msg)
}

// connect starts the app as a client of its broker and returns the
// function that disconnects it.
func (c *command) connect(ctx context.Context) (func(), error) {
	if err := c.app.StartClient(ctx, *c.broker, *c.data); err != nil {
		return nil, fmt.Errorf("%s %s: %w; pass the app's broker with --broker (nats://host:4222, amqp://user:pass@host:5672/) or set TROUPE_BROKER", c.app.Name(), c.name, err)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		_ = c.app.Stop(sctx)
	}, nil
}

// subscriptions returns the app's subscriptions as "service.name", in
// declaration order.
func subscriptions(app *troupe.App) []string {
	var out []string
	for _, s := range app.Services() {
		for _, sub := range s.Subscriptions() {
			out = append(out, sub.String())
		}
	}
	return out
}

// checkSubscription rejects a name the app does not declare.
func (c *command) checkSubscription(name string) error {
	subs := subscriptions(c.app)
	if slices.Contains(subs, name) {
		return nil
	}
	if len(subs) == 0 {
		return c.usageErr("no subscription %q: the app declares none", name)
	}
	return c.usageErr("no subscription %q: name it as service.subscription, one of %s", name, strings.Join(subs, ", "))
}

// topics returns the names of the topics the app declares, sorted.
func topics(app *troupe.App) []string {
	var out []string
	add := func(ts []troupe.AnyTopic) {
		for _, t := range ts {
			if !slices.Contains(out, t.Name()) {
				out = append(out, t.Name())
			}
		}
	}
	for _, s := range app.Services() {
		add(s.Topics())
	}
	add(app.ExternalTopics())
	slices.Sort(out)
	return out
}

// isTerminal reports whether w is a terminal, for progress lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// shortID abbreviates a long id for tables; full ids are in --json and
// "dlq show".
func shortID(id string) string {
	if len(id) > 13 {
		return id[:13] + "…"
	}
	return id
}

// oneLine returns the first line of s, cut to n characters.
func oneLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
