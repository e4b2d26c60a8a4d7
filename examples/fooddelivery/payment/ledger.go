package payment

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/troupe-go/troupe/examples/fooddelivery/internal/api"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
)

// Entry is one order in the ledger.
type Entry struct {
	OrderID     string `json:"order_id"`
	Customer    string `json:"customer"`
	AmountCents int64  `json:"amount_cents"`
	ChargeID    string `json:"charge_id"`
	// ChargedBy is the id of the order_placed event that charged the order.
	ChargedBy string    `json:"charged_by"`
	ChargedAt time.Time `json:"charged_at"`
	RefundID  string    `json:"refund_id,omitempty"`
	// RefundedBy is the id of the event that asked for the refund.
	RefundedBy string    `json:"refunded_by,omitempty"`
	RefundedAt time.Time `json:"refunded_at,omitzero"`
}

// Books is the body of GET /ledger. The gateway counts are what a payment
// gateway would bill: every call that moved money.
type Books struct {
	// Charges and ChargedCents count the charges the gateway made.
	Charges      int   `json:"charges"`
	ChargedCents int64 `json:"charged_cents"`
	// Refunds and RefundedCents count the refunds the gateway made.
	Refunds       int   `json:"refunds"`
	RefundedCents int64 `json:"refunded_cents"`
	// NetCents is what the customers paid in the end.
	NetCents int64 `json:"net_cents"`
	// OrdersChargedTwice and OrdersRefundedTwice count orders the gateway
	// moved money for more than once. Exactly-once money means both are 0.
	OrdersChargedTwice  int `json:"orders_charged_twice"`
	OrdersRefundedTwice int `json:"orders_refunded_twice"`
	// Redeliveries counts deliveries of an event that had already moved
	// money: published again, money left alone. OtherEvents counts events
	// for an order whose money another event had moved: ignored.
	Redeliveries int `json:"redeliveries"`
	OtherEvents  int `json:"other_events_ignored"`
	// RefundsRefused counts refunds asked for orders this ledger never
	// charged; their events are dead-lettered.
	RefundsRefused int `json:"refunds_refused"`
	// SimulatedCrashes counts attempts failed on purpose after moving money
	// (Options.CrashRate).
	SimulatedCrashes int `json:"simulated_crashes"`
}

// outcome is what the ledger did with a request to move money.
type outcome int

const (
	moved      outcome = iota // the gateway moved the money now
	redelivery                // this event moved it before
	otherEvent                // another event moved it before
	missing                   // no charge to refund
)

// ledger is the payment service's books, in memory, keyed by order id. A
// real one lives in a database, written in the transaction that records
// the handled event's id; the rules are the same.
type ledger struct {
	mu      sync.Mutex
	entries map[string]*Entry
	books   Books
	// gateway counts the calls that moved money per order, kept apart from
	// the entries so that a bug in the deduplication shows up as an order
	// charged twice instead of hiding in the entry it would overwrite.
	gatewayCharges map[string]int
	gatewayRefunds map[string]int
}

func newLedger() *ledger {
	return &ledger{entries: make(map[string]*Entry), gatewayCharges: make(map[string]int), gatewayRefunds: make(map[string]int)}
}

func reference(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return prefix + hex.EncodeToString(b)
}

// charge charges order id for event evID unless it was charged before, and
// returns the order's entry (a copy) and what happened.
func (l *ledger) charge(id, customer string, cents int64, evID string) (Entry, outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[id]; e != nil {
		if e.ChargedBy == evID {
			l.books.Redeliveries++
			return *e, redelivery
		}
		l.books.OtherEvents++
		return *e, otherEvent
	}
	e := &Entry{OrderID: id, Customer: customer, AmountCents: cents, ChargeID: reference("ch_"), ChargedBy: evID, ChargedAt: time.Now().UTC()}
	l.entries[id] = e
	l.gatewayCharge(id, cents)
	return *e, moved
}

// refund refunds order id's charge for event evID unless it was refunded
// before.
func (l *ledger) refund(id, evID string) (Entry, outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[id]
	switch {
	case e == nil:
		l.books.RefundsRefused++
		return Entry{}, missing
	case e.RefundedBy == evID:
		l.books.Redeliveries++
		return *e, redelivery
	case e.RefundedBy != "":
		l.books.OtherEvents++
		return *e, otherEvent
	}
	e.RefundID, e.RefundedBy, e.RefundedAt = reference("re_"), evID, time.Now().UTC()
	l.gatewayRefund(id, e.AmountCents)
	return *e, moved
}

func (l *ledger) gatewayCharge(id string, cents int64) {
	l.gatewayCharges[id]++
	if l.gatewayCharges[id] == 2 {
		l.books.OrdersChargedTwice++
	}
	l.books.Charges++
	l.books.ChargedCents += cents
	l.books.NetCents += cents
}

func (l *ledger) gatewayRefund(id string, cents int64) {
	l.gatewayRefunds[id]++
	if l.gatewayRefunds[id] == 2 {
		l.books.OrdersRefundedTwice++
	}
	l.books.Refunds++
	l.books.RefundedCents += cents
	l.books.NetCents -= cents
}

func (l *ledger) crashed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.books.SimulatedCrashes++
}

func (l *ledger) snapshot() Books {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.books
}

func (l *ledger) entry(id string) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[id]
	if e == nil {
		return Entry{}, false
	}
	return *e, true
}

// serveLedger serves GET /ledger and GET /ledger?order=ID.
func (p *processor) serveLedger(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := httpjson.CheckQuery(q, "order"); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if !q.Has("order") {
		httpjson.WriteJSON(w, http.StatusOK, p.ledger.snapshot())
		return
	}
	id := q.Get("order")
	if !api.ValidRef(id) {
		httpjson.WriteError(w, http.StatusBadRequest, "order must be an order id: 1 to 100 printable characters")
		return
	}
	e, ok := p.ledger.entry(id)
	if !ok {
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("the ledger has no charge for order %q", id))
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, e)
}
