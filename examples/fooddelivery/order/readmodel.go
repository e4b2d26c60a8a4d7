package order

import (
	"cmp"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Order is an order as GET /orders/{id} shows it: what was ordered, where
// it stands, and the timeline of its business transaction.
type Order struct {
	ID         string    `json:"id"`
	Customer   string    `json:"customer,omitempty"`
	Restaurant string    `json:"restaurant,omitempty"`
	Items      []Item    `json:"items,omitempty"`
	TotalCents int64     `json:"total_cents"`
	Status     Status    `json:"status"`
	Terminal   bool      `json:"terminal"`
	PlacedAt   time.Time `json:"placed_at,omitzero"`
	// Conflict is set when the order heard both outcomes (confirmed and
	// cancelled): a broken choreography. It never happens in a sound run.
	Conflict bool `json:"conflict,omitempty"`
	// Timeline holds the order's events in causal order: each one's
	// CausationID is the ID of the one before it, and all share the order
	// id as CorrelationID.
	Timeline []TimelineEvent `json:"timeline"`
	Links    Links           `json:"links"`
}

// TimelineEvent is one event of an order's business transaction.
type TimelineEvent struct {
	Type string `json:"type"`
	// Service is the service that published the event.
	Service string    `json:"service"`
	Time    time.Time `json:"time"`
	// Attempt is the attempt of the handler that published the event.
	Attempt       int    `json:"attempt"`
	ID            string `json:"id"`
	CausationID   string `json:"causation_id,omitempty"`
	CorrelationID string `json:"correlation_id"`
	// Status is the status the event moves the order to.
	Status  Status `json:"status"`
	Summary string `json:"summary"`
}

// Links holds the URLs of an order's resources.
type Links struct {
	Self string `json:"self"`
}

// Summary is one order in the list of GET /orders.
type Summary struct {
	ID         string `json:"id"`
	Customer   string `json:"customer,omitempty"`
	Restaurant string `json:"restaurant,omitempty"`
	Status     Status `json:"status"`
	TotalCents int64  `json:"total_cents"`
	Links      Links  `json:"links"`
}

// Totals sums the read model: orders by status and money by outcome, as
// the order service learnt them from events.
type Totals struct {
	Count    int            `json:"count"`
	ByStatus map[Status]int `json:"by_status"`
	// Terminal counts orders in a terminal status; Stuck the others.
	Terminal  int `json:"terminal"`
	Stuck     int `json:"stuck"`
	Conflicts int `json:"conflicts"`
	// PlacedCents is the value of every order; ConfirmedCents of those the
	// restaurant confirmed; CancelledCents of those it could not take.
	PlacedCents    int64 `json:"placed_cents"`
	ConfirmedCents int64 `json:"confirmed_cents"`
	CancelledCents int64 `json:"cancelled_cents"`
	// Duplicates counts deliveries the read model ignored because it had
	// the event, or an event of the same type for the order, already.
	// Redeliveries counts deliveries the broker marked as a later attempt.
	// Delivery is at least once, so neither has to be zero.
	Duplicates   int `json:"duplicates_ignored"`
	Redeliveries int `json:"redeliveries"`
}

// readModel is the order service's view of every order, built from the
// orders it accepts and the events of their transactions. It lives in
// memory: a restarted process starts empty. Delivery is at least once and
// subscriptions run concurrently, so it keeps one event per type and order,
// sorts each timeline back into causal order, and never moves a status
// backwards.
type readModel struct {
	mu     sync.Mutex
	orders map[string]*entry
	seq    int
	dups   int
	redel  int
}

type entry struct {
	Order
	seq int
}

func newReadModel() *readModel { return &readModel{orders: make(map[string]*entry)} }

// lookup returns the entry of id, creating it when the first news of an
// order is one of its events. The caller holds m.mu.
func (m *readModel) lookup(id string) *entry {
	e := m.orders[id]
	if e == nil {
		m.seq++
		e = &entry{Order: Order{ID: id, Status: StatusPlaced, Timeline: []TimelineEvent{}, Links: Links{Self: orderPath(id)}}, seq: m.seq}
		m.orders[id] = e
	}
	return e
}

// has reports whether the model knows order id.
func (m *readModel) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.orders[id] != nil
}

// place records an order accepted over HTTP before its event is published,
// so a GET right after the POST finds it.
func (m *readModel) place(p PlacedV1, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookup(p.OrderID).fill(p, at)
}

// forget drops an order whose event could not be published, unless an
// event of it arrived after all.
func (m *readModel) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.orders[id]; e != nil && len(e.Timeline) == 0 {
		delete(m.orders, id)
	}
}

// apply adds ev to order id's timeline and moves its status. placed, when
// not nil, fills in what was ordered. attempt is the delivery's attempt.
func (m *readModel) apply(id string, ev TimelineEvent, placed *PlacedV1, attempt int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if attempt > 1 {
		m.redel++
	}
	e := m.lookup(id)
	// One event per type: a second one is a redelivery (same id) or a
	// duplicate from upstream (a client that sent an order twice under one
	// id), and the services downstream ignore it as well.
	if slices.ContainsFunc(e.Timeline, func(t TimelineEvent) bool { return t.Type == ev.Type }) {
		m.dups++
		return
	}
	if placed != nil && e.Customer == "" {
		e.fill(*placed, ev.Time)
	}
	e.Timeline = append(e.Timeline, ev)
	slices.SortStableFunc(e.Timeline, func(a, b TimelineEvent) int {
		return cmp.Or(cmp.Compare(rank[a.Status], rank[b.Status]), a.Time.Compare(b.Time))
	})
	if (ev.Status.success() && e.Status.compensation()) || (ev.Status.compensation() && e.Status.success()) {
		e.Conflict = true
	}
	if rank[ev.Status] > rank[e.Status] {
		e.Status = ev.Status
	}
	e.Terminal = e.Status.Terminal()
}

func (e *entry) fill(p PlacedV1, at time.Time) {
	e.Customer, e.Restaurant, e.Items, e.TotalCents, e.PlacedAt = p.Customer, p.Restaurant, p.Items, p.TotalCents, at
}

// get returns a copy of order id.
func (m *readModel) get(id string) (Order, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.orders[id]
	if e == nil {
		return Order{}, false
	}
	o := e.Order
	o.Items = slices.Clone(o.Items)
	o.Timeline = slices.Clone(o.Timeline)
	return o, true
}

// list returns the totals and up to limit orders with status (any status
// when empty), newest first.
func (m *readModel) list(status Status, limit int) (Totals, []Summary) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := Totals{ByStatus: make(map[Status]int), Duplicates: m.dups, Redeliveries: m.redel}
	var match []*entry
	for _, e := range m.orders {
		t.Count++
		t.ByStatus[e.Status]++
		t.PlacedCents += e.TotalCents
		switch {
		case e.Status.success():
			t.ConfirmedCents += e.TotalCents
		case e.Status.compensation():
			t.CancelledCents += e.TotalCents
		}
		if e.Terminal {
			t.Terminal++
		} else {
			t.Stuck++
		}
		if e.Conflict {
			t.Conflicts++
		}
		if status == "" || e.Status == status {
			match = append(match, e)
		}
	}
	slices.SortFunc(match, func(a, b *entry) int { return cmp.Compare(b.seq, a.seq) })
	out := make([]Summary, 0, min(limit, len(match)))
	for _, e := range match[:min(limit, len(match))] {
		out = append(out, Summary{ID: e.ID, Customer: e.Customer, Restaurant: e.Restaurant, Status: e.Status, TotalCents: e.TotalCents, Links: e.Links})
	}
	return t, out
}

func orderPath(id string) string { return "/orders/" + url.PathEscape(id) }
