package payment

import (
	"net/http"

	"github.com/troupe-go/troupe/examples/internal/gateway"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
)

// OrderMovements is the body of GET /ledger?order=ID.
type OrderMovements struct {
	OrderID   string             `json:"order_id"`
	Movements []gateway.Movement `json:"movements"`
}

// serveLedger serves GET /ledger (the gateway's books, gateway.Books) and
// GET /ledger?order=ID (one order's charges and refunds).
func (p *processor) serveLedger(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := httpjson.CheckQuery(q, "order"); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if !q.Has("order") {
		b, err := p.gw.Books(r.Context())
		if err != nil {
			p.log.Error("payment: ledger", "err", err)
			httpjson.WriteError(w, http.StatusServiceUnavailable, "the gateway's books do not answer right now; try again")
			return
		}
		httpjson.WriteJSON(w, http.StatusOK, b)
		return
	}
	id := q.Get("order")
	if id == "" || len(q["order"]) > 1 {
		httpjson.WriteError(w, http.StatusBadRequest, "order must be one order id, as in /ledger?order=b69de227601c")
		return
	}
	ms, err := p.gw.Movements(r.Context(), id)
	if err != nil {
		p.log.Error("payment: ledger", "order", id, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the gateway's books do not answer right now; try again")
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, OrderMovements{OrderID: id, Movements: ms})
}
