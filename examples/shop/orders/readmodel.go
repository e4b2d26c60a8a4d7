package orders

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Order is an order as GET /orders/{id} shows it: what was ordered, how far
// its fulfilment has come, and the events of its business transaction so far.
type Order struct {
	ID       string    `json:"id"`
	Customer string    `json:"customer,omitempty"`
	Lines    []Line    `json:"lines,omitempty"`
	Total    Money     `json:"total,omitzero"`
	Status   Status    `json:"status"`
	PlacedAt time.Time `json:"placed_at,omitzero"`
	// Events are in causal order: each one's CausationID is the ID of the one
	// before it, the first has none, and all share the order id as
	// CorrelationID.
	Events []TimelineEvent `json:"events"`
	Links  Links           `json:"links"`
}

// TimelineEvent is one event of an order's business transaction, with the
// envelope attributes that tie it to the others.
type TimelineEvent struct {
	Type          string    `json:"type"`
	ID            string    `json:"id"`
	CausationID   string    `json:"causation_id,omitempty"`
	CorrelationID string    `json:"correlation_id"`
	Source        string    `json:"source"`
	Time          time.Time `json:"time"`
	// Status is the status the event moves the order to.
	Status Status `json:"status"`
	// Summary says what happened, as the publishing service describes it.
	Summary string `json:"summary"`
}

// Links holds the URLs of an order's resources.
type Links struct {
	Self string `json:"self"`
}

// OrderSummary is one order in the list of GET /orders.
type OrderSummary struct {
	ID       string `json:"id"`
	Customer string `json:"customer,omitempty"`
	Status   Status `json:"status"`
	Links    Links  `json:"links"`
}

// readModel is the orders service's view of every order it knows, built from
// the orders it accepts and the events of their fulfilment. It lives in
// memory: a restarted process starts empty and learns again only from new
// events. Delivery is at least once and the subscriptions run concurrently,
// so it ignores an event it has already applied and never moves an order's
// status backwards.
type readModel struct {
	mu     sync.Mutex
	orders map[string]*entry
	seq    int
	stats  Stats
}

// Stats counts what the read model heard beyond one delivery of each event.
// Delivery is at least once, so neither needs to be zero; they show how
// often the idempotence of the read model was needed.
type Stats struct {
	// Duplicates counts deliveries of an event the read model had already
	// applied, and therefore ignored: a broker redelivery after a lost
	// acknowledgement, or a second publish of the same event id by a retried
	// handler that the broker did not drop.
	Duplicates int `json:"duplicates_ignored"`
	// Redeliveries counts deliveries the broker marked as a later attempt
	// (Envelope.Attempt > 1), whether or not the event was applied before.
	Redeliveries int `json:"redeliveries"`
}

type entry struct {
	Order
	seq     int             // creation order, for listing
	applied map[string]bool // ids of the events already in the timeline
}

func newReadModel() *readModel {
	return &readModel{orders: make(map[string]*entry)}
}

// lookup returns the entry of id, creating it when the first thing the model
// hears of an order is one of its events (a restarted process, or events that
// overtook the order's own). The caller holds m.mu.
func (m *readModel) lookup(id string) *entry {
	e := m.orders[id]
	if e == nil {
		m.seq++
		e = &entry{
			Order:   Order{ID: id, Status: StatusPlaced, Events: []TimelineEvent{}, Links: Links{Self: orderPath(id)}},
			seq:     m.seq,
			applied: make(map[string]bool),
		}
		m.orders[id] = e
	}
	return e
}

// place records an order accepted over HTTP, before its event is published,
// so that a GET right after the POST finds it.
func (m *readModel) place(p PlacedV1, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookup(p.OrderID).fill(p, at)
}

// forget drops an order whose event could not be published, unless some
// event of it has arrived after all.
func (m *readModel) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.orders[id]; e != nil && len(e.Events) == 0 {
		delete(m.orders, id)
	}
}

// apply adds ev to the timeline of order id and moves its status forward to
// ev.Status. placed, when not nil, fills in what was ordered. An event id
// seen before changes nothing but the count of duplicates, so a redelivery
// is harmless. attempt is the delivery's attempt number, from 1.
func (m *readModel) apply(id string, ev TimelineEvent, placed *PlacedV1, attempt int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if attempt > 1 {
		m.stats.Redeliveries++
	}
	e := m.lookup(id)
	if e.applied[ev.ID] {
		m.stats.Duplicates++
		return
	}
	e.applied[ev.ID] = true
	if placed != nil && e.Customer == "" {
		e.fill(*placed, ev.Time)
	}
	e.Events = append(e.Events, ev)
	// Steps happen one after the other, so sorting by the step each event
	// stands for restores the causal order whatever the arrival order was.
	slices.SortStableFunc(e.Events, func(a, b TimelineEvent) int {
		return cmp.Or(cmp.Compare(statusRank[a.Status], statusRank[b.Status]), a.Time.Compare(b.Time))
	})
	if statusRank[ev.Status] > statusRank[e.Status] {
		e.Status = ev.Status
	}
}

func (e *entry) fill(p PlacedV1, at time.Time) {
	e.Customer, e.Lines, e.Total, e.PlacedAt = p.Customer, p.Lines, p.Total, at
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
	o.Lines = slices.Clone(o.Lines)
	o.Events = slices.Clone(o.Events)
	return o, true
}

// list returns how many orders the model knows, how many of them have
// reached each status, up to limit of them, newest first, and the model's
// stats.
func (m *readModel) list(limit int) (int, map[Status]int, []OrderSummary, Stats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := make([]*entry, 0, len(m.orders))
	byStatus := make(map[Status]int)
	for _, e := range m.orders {
		all = append(all, e)
		byStatus[e.Status]++
	}
	slices.SortFunc(all, func(a, b *entry) int { return cmp.Compare(b.seq, a.seq) })
	out := make([]OrderSummary, 0, min(limit, len(all)))
	for _, e := range all[:min(limit, len(all))] {
		out = append(out, OrderSummary{ID: e.ID, Customer: e.Customer, Status: e.Status, Links: e.Links})
	}
	return len(all), byStatus, out, m.stats
}

func orderPath(id string) string { return "/orders/" + id }
