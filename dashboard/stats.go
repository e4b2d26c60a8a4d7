package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/topology"
	"github.com/troupe-go/troupe/transport"
)

// window is how far back the rates on the graph look.
const window = 60 * time.Second

// meter counts events and how many fell in each of the last seconds.
type meter struct {
	total   int64
	buckets [int(window / time.Second)]int64
	stamps  [int(window / time.Second)]int64 // the unix second each bucket counts
}

func (m *meter) add(now time.Time) {
	m.total++
	sec := now.Unix()
	i := int(sec % int64(len(m.buckets)))
	if m.stamps[i] != sec {
		m.stamps[i], m.buckets[i] = sec, 0
	}
	m.buckets[i]++
}

// rate returns the events per second over the window, or over the time
// since start when that is shorter.
func (m *meter) rate(now, start time.Time) float64 {
	sec := now.Unix()
	var n int64
	for i, s := range m.stamps {
		if s > sec-int64(len(m.buckets)) && s <= sec {
			n += m.buckets[i]
		}
	}
	span := min(now.Sub(start), window).Seconds()
	if span < 1 {
		span = 1
	}
	return float64(n) / span
}

// subCounts is what this process saw one subscription do.
type subCounts struct {
	attempts, handled, failed, retried, deadLettered, compensated meter
	busy                                                          time.Duration // summed attempt durations
}

// pubKey names who published a topic: a node ID of the graph (a
// subscription, a service, or topology.ExternalID) and the topic's name.
type pubKey struct{ from, topic string }

type pubCounts struct{ ok, failed meter }

// stats is the dashboard's middleware: it counts, per subscription and per
// publisher and topic, what this process handled and published, and keeps a
// short list of the business transactions it saw.
type stats struct {
	app   *troupe.App
	start time.Time

	mu   sync.Mutex
	subs map[string]*subCounts // "service.name"
	pubs map[pubKey]*pubCounts
	txs  recentTxs
}

func newStats(app *troupe.App) *stats {
	return &stats{app: app, start: time.Now(), subs: make(map[string]*subCounts), pubs: make(map[pubKey]*pubCounts),
		txs: recentTxs{max: maxTxs, byID: make(map[string]*txSummary)}}
}

// settled counts every attempt at handling an event of sub by the outcome
// troupe decided for it.
func (s *stats) settled(sub *troupe.Subscription) troupe.SettledFunc {
	name := sub.String()
	return func(_ context.Context, st troupe.Settlement) {
		now := time.Now()
		d := st.Delivery
		s.mu.Lock()
		defer s.mu.Unlock()
		c := s.subs[name]
		if c == nil {
			c = &subCounts{}
			s.subs[name] = c
		}
		c.attempts.add(now)
		c.busy += st.Took
		switch st.Outcome {
		case troupe.Handled:
			c.handled.add(now)
		case troupe.Compensated:
			c.compensated.add(now)
		case troupe.Retried:
			c.failed.add(now)
			c.retried.add(now)
		case troupe.DeadLettered:
			c.failed.add(now)
			c.deadLettered.add(now)
		}
		if d.CorrelationID != "" {
			s.txs.handled(d.CorrelationID, now, st.Outcome, d.Replays > 0)
		}
	}
}

func (s *stats) publish(next troupe.PublishFunc) troupe.PublishFunc {
	return func(ctx context.Context, msgs []*transport.Message) error {
		err := next(ctx, msgs)
		now := time.Now()
		h, inHandler := troupe.HandlingOf(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, m := range msgs {
			topic, _, perr := transport.ParseType(m.Type)
			if perr != nil {
				continue
			}
			from := topology.ExternalID
			switch {
			case inHandler:
				from = topology.SubscriptionID(h.Event.Subscription)
			case serviceOf(m.Source) != "":
				from = topology.ServiceID(serviceOf(m.Source))
			}
			k := pubKey{from, topic}
			c := s.pubs[k]
			if c == nil {
				c = &pubCounts{}
				s.pubs[k] = c
			}
			if err != nil {
				c.failed.add(now)
				continue
			}
			c.ok.add(now)
			if m.CorrelationID != "" {
				s.txs.published(m.CorrelationID, now, m.Type)
			}
		}
		return err
	}
}

// serviceOf reads the service from a troupe ce-source, "/<app>/<service>".
func serviceOf(source string) string {
	_, svc, _ := transport.ParseSource(source)
	return svc
}

// maxTxs is how many business transactions the dashboard lists.
const maxTxs = 200

// txSummary is what this process saw of one business transaction.
type txSummary struct {
	Correlation  string    `json:"correlation"`
	First        time.Time `json:"first"`
	Last         time.Time `json:"last"`
	FirstType    string    `json:"firstType,omitempty"`
	Published    int       `json:"published"`
	Handled      int       `json:"handled"`
	Retried      int       `json:"retried"`
	DeadLettered int       `json:"deadLettered"`
	Compensated  int       `json:"compensated"`
	Recovered    int       `json:"recovered"` // replayed dead letters handled
	Status       string    `json:"status"`
}

func (t *txSummary) settle() {
	switch {
	case t.DeadLettered > t.Recovered:
		t.Status = string(troupe.DeadLettered)
	case t.Compensated > 0:
		t.Status = string(troupe.Compensated)
	case t.DeadLettered > 0:
		t.Status = "recovered"
	case t.Retried > 0:
		t.Status = string(troupe.Retried)
	default:
		t.Status = "ok"
	}
}

// recentTxs keeps the last max transactions seen, oldest dropped first.
type recentTxs struct {
	max   int
	order []string
	byID  map[string]*txSummary
}

func (r *recentTxs) get(id string, now time.Time) *txSummary {
	t := r.byID[id]
	if t == nil {
		t = &txSummary{Correlation: id, First: now}
		r.byID[id] = t
		r.order = append(r.order, id)
		if len(r.order) > r.max {
			delete(r.byID, r.order[0])
			r.order = r.order[1:]
		}
	}
	t.Last = now
	return t
}

func (r *recentTxs) published(id string, now time.Time, typ string) {
	t := r.get(id, now)
	if t.Published == 0 {
		t.FirstType = typ
	}
	t.Published++
	t.settle()
}

func (r *recentTxs) handled(id string, now time.Time, outcome troupe.Outcome, replayed bool) {
	t := r.get(id, now)
	switch outcome {
	case troupe.Handled:
		t.Handled++
		if replayed {
			t.Recovered++
		}
	case troupe.Retried:
		t.Retried++
	case troupe.DeadLettered:
		t.DeadLettered++
	case troupe.Compensated:
		t.Compensated++
	}
	t.settle()
}

// list returns copies of the transactions, newest first.
func (r *recentTxs) list() []txSummary {
	out := make([]txSummary, 0, len(r.order))
	for i := len(r.order) - 1; i >= 0; i-- {
		out = append(out, *r.byID[r.order[i]])
	}
	return out
}
