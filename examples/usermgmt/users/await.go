package users

import (
	"context"
	"encoding/json"
	"time"

	"github.com/troupe-go/troupe"
)

// awaiter lets POST /users wait for the outcome of a registration it is
// about to commit.
//
// troupe.Request publishes its own event; here user_registered goes out
// through the outbox, after the commit, so that no event announces a user
// whose row was rolled back. troupe.Expect is Request's other half: it
// starts listening for the registration's outcome (on the broker, so the
// outcome may come from a mailer in another process) before the commit,
// and Wait then returns it, even if it came first.
type awaiter struct {
	status map[string]string // outcome topic name → status reported
	topics []troupe.AnyTopic
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

func newAwaiter(outcomes []Outcome) *awaiter {
	a := &awaiter{status: make(map[string]string)}
	for _, o := range outcomes {
		a.status[o.topic.Name()] = o.status
		a.topics = append(a.topics, o.topic)
	}
	return a
}

// statuses lists the outcomes' statuses.
func (a *awaiter) statuses() []string {
	out := make([]string, 0, len(a.topics))
	for _, t := range a.topics {
		out = append(out, a.status[t.Name()])
	}
	return out
}

// enabled reports whether there is anything to wait for.
func (a *awaiter) enabled() bool { return len(a.topics) > 0 }

// expect starts listening for the outcome of the registration whose
// correlation id is id. ctx must carry the app.
func (a *awaiter) expect(ctx context.Context, id string) (*troupe.Expectation, error) {
	return troupe.Expect(ctx, id, a.topics...)
}

// outcome turns a reply into what the answer shows.
func (a *awaiter) outcome(r troupe.Reply) OutcomeEvent {
	o := OutcomeEvent{Event: &EventRef{Type: r.Type, ID: r.ID, Time: r.Time, Data: r.Data()}}
	for _, t := range a.topics {
		if r.Is(t) {
			o.Status = a.status[t.Name()]
		}
	}
	return o
}
