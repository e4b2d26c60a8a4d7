package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// Tail is the tail command, registered when this package is imported:
//
//	<app> tail [--topic name[,name]] [--correlation id] [--json] [--broker URL] [--data DIR]
//
// It prints each event published to the app's topics (or to the named
// ones, every version) as it passes the broker, one line each, until ctx
// ends (Ctrl-C), and then returns nil. It listens through a tap: it sees
// events from the moment it starts, takes nothing from any subscription,
// and does not see retries and replays, which go to one subscription
// only. With --json each line is a JSON object with the event's
// attributes and its data. A topic the app does not declare is a usage
// error; a broker that cannot tap (transport.Tapper) or a lost connection
// is an error.
func Tail(ctx context.Context, app *troupe.App, args []string, stdout, stderr io.Writer) error {
	c := newCommand(app, "tail", "tail [--topic name[,name]] [--correlation id] [--json] [--broker URL] [--data DIR]",
		"Prints the events published to the app's topics as they pass the broker, one line each, until interrupted.", stderr)
	topicFlag := c.fs.String("topic", "", "only events of these `topics` (comma-separated names, every version)")
	correlation := c.fs.String("correlation", "", "only events of the business transaction with this correlation `id`")
	asJSON := c.fs.Bool("json", false, "print each event as a JSON object, data included")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	var names []string
	known := topics(app)
	for _, n := range strings.Split(*topicFlag, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !slices.Contains(known, n) {
			return c.usageErr("unknown topic %q: the app has %s", n, strings.Join(known, ", "))
		}
		names = append(names, n)
	}
	disconnect, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer disconnect()
	tapper, ok := app.Transport().(transport.Tapper)
	if !ok {
		return fmt.Errorf("%s tail: this broker cannot show events as they pass (%T is no transport.Tapper)", app.Name(), app.Transport())
	}
	var (
		mu      sync.Mutex
		written error // the first error writing to stdout
	)
	// The tap gets a context that never ends: tail stops it with Close.
	// On RabbitMQ, a tap whose context ends cancels its consumer while the
	// tap closes its channel, two calls that can wait for each other's
	// answer forever.
	tp, err := tapper.Tap(context.WithoutCancel(ctx), names, func(m *transport.Message) {
		if *correlation != "" && m.CorrelationID != *correlation {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if written == nil {
			written = writeEvent(stdout, m, *asJSON)
		}
	})
	if err != nil {
		return fmt.Errorf("%s tail: %w", app.Name(), err)
	}
	what := "every topic"
	if len(names) > 0 {
		what = strings.Join(names, ", ")
	}
	fmt.Fprintf(stderr, "tailing %s of %s; interrupt to stop\n", what, app.Name())
	select {
	case <-ctx.Done():
		_ = tp.Close()
		<-tp.Done()
		return nil
	case <-tp.Done():
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s tail: the connection to the broker was lost; run tail again", app.Name())
	}
}

// eventJSON is one event in tail --json.
type eventJSON struct {
	Time          time.Time       `json:"time"`
	Type          string          `json:"type"`
	Source        string          `json:"source"`
	ID            string          `json:"id"`
	CorrelationID string          `json:"correlation"`
	CausationID   string          `json:"causation,omitempty"`
	Data          json.RawMessage `json:"data,omitempty"`
	Text          string          `json:"data_text,omitempty"` // data that is not JSON
}

func writeEvent(w io.Writer, m *transport.Message, asJSON bool) error {
	if asJSON {
		e := eventJSON{Time: m.Time, Type: m.Type, Source: m.Source, ID: m.ID, CorrelationID: m.CorrelationID, CausationID: m.CausationID}
		if json.Valid(m.Data) {
			e.Data = m.Data
		} else {
			e.Text = string(m.Data)
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	cause := ""
	if m.CausationID != "" {
		cause = " causation=" + m.CausationID
	}
	_, err := fmt.Fprintf(w, "%s %s from %s id=%s correlation=%s%s\n",
		m.Time.Local().Format("15:04:05.000"), m.Type, sourceName(m.Source), m.ID, m.CorrelationID, cause)
	return err
}

// sourceName shows a troupe source "/<app>/<service>" as its service, and
// other sources as they are.
func sourceName(source string) string {
	app, svc, ok := transport.ParseSource(source)
	switch {
	case ok && svc != "":
		return svc
	case ok:
		return app + " (outside services)"
	case source == "":
		return "?"
	}
	return source
}
