package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// awaiter lets POST /users wait for the outcome of a registration it has
// just committed.
//
// troupe.Request waits for outcomes too, but only of an event it publishes
// itself, directly to the broker. Here user_registered must go out through
// the outbox, after the commit, so that no event announces a user whose
// row was rolled back; so this type does what Request does under the hood:
// it taps the outcome topics on the broker (the outcome may come from a
// mailer in another process, and a tap takes nothing from the durable
// subscriptions) and hands each tapped event to the request waiting on its
// correlation id, the user's id. The wait is registered before the commit,
// so an outcome cannot pass before anyone listens.
type awaiter struct {
	app    *troupe.App
	status map[string]string // outcome topic name → status reported
	names  []string

	mu      sync.Mutex
	tap     transport.Tap
	waiting map[string]chan OutcomeEvent // by correlation id
}

// OutcomeEvent is the outcome a waiting POST /users reports.
type OutcomeEvent struct {
	// Status says what happened to the welcome mail: the status given to
	// AwaitOutcome for the event's topic, or "pending".
	Status string `json:"status"`
	// Event is the outcome event, when one arrived.
	Event *EventRef `json:"event,omitempty"`
}

// EventRef shows an event in an answer.
type EventRef struct {
	Type string          `json:"type"`
	ID   string          `json:"id"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// errNoTap is returned by watch on a broker that cannot tap events.
var errNoTap = errors.New("this broker cannot show events as they pass, which waiting for an outcome needs")

func newAwaiter(app *troupe.App, outcomes []Outcome) *awaiter {
	a := &awaiter{app: app, status: make(map[string]string), waiting: make(map[string]chan OutcomeEvent)}
	for _, o := range outcomes {
		a.status[o.topic.Name()] = o.status
		a.names = append(a.names, o.topic.Name())
	}
	app.OnStop(func(context.Context) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.tap != nil {
			_ = a.tap.Close()
			a.tap = nil
		}
		return nil
	})
	return a
}

// enabled reports whether there is anything to wait for.
func (a *awaiter) enabled() bool { return len(a.names) > 0 }

// watch starts waiting for the outcome of correlation id. It opens the tap
// on first use, or again after a lost connection closed it. The returned
// function ends the wait.
func (a *awaiter) watch(id string) (<-chan OutcomeEvent, func(), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tap != nil {
		select {
		case <-a.tap.Done():
			a.tap = nil
		default:
		}
	}
	if a.tap == nil {
		tapper, ok := a.app.Transport().(transport.Tapper)
		if !ok {
			return nil, nil, fmt.Errorf("%w (%T)", errNoTap, a.app.Transport())
		}
		// The tap lives until the app stops (OnStop above) or the
		// connection drops; it is not tied to one request.
		tp, err := tapper.Tap(context.Background(), a.names, a.deliver)
		if err != nil {
			return nil, nil, fmt.Errorf("tap outcomes: %w", err)
		}
		a.tap = tp
	}
	ch := make(chan OutcomeEvent, 1)
	a.waiting[id] = ch
	return ch, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.waiting[id] == ch {
			delete(a.waiting, id)
		}
	}, nil
}

// deliver runs on the tap's goroutine for each outcome event; it must not
// block.
func (a *awaiter) deliver(m *transport.Message) {
	name, _, err := transport.ParseType(m.Type)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.waiting[m.CorrelationID]
	if !ok {
		return
	}
	select {
	case ch <- OutcomeEvent{Status: a.status[name], Event: &EventRef{Type: m.Type, ID: m.ID, Time: m.Time, Data: json.RawMessage(m.Data)}}:
	default: // it has its outcome already
	}
}
