package order

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/fooddelivery/internal/api"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/outbox"
)

// Limits of what POST /orders accepts.
const (
	maxBodyBytes  = 64 << 10
	maxNameLen    = 100
	maxItems      = 50
	maxQty        = 50
	maxPriceCents = 100_000
	maxKeyLen     = 200
	// listDefault and listMax bound how many orders GET /orders lists.
	listDefault = 50
	listMax     = 10_000
)

// handlers serves the order service's HTTP routes.
type handlers struct {
	log *slog.Logger
	rm  *readModel
}

// placeRequest is the body of POST /orders.
type placeRequest struct {
	Customer   string `json:"customer"`
	Restaurant string `json:"restaurant"`
	Items      []Item `json:"items"`
}

// Accepted is the body of a successful POST /orders.
type Accepted struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	// Replayed is set when the answer repeats the one given earlier to the
	// same Idempotency-Key; no second order was placed.
	Replayed bool  `json:"replayed,omitempty"`
	Links    Links `json:"links"`
}

// place accepts an order: it checks the request, and in one transaction
// records the order (and its Idempotency-Key, if it came with one) and
// writes order_placed to the outbox, with the order id as correlation id;
// the relay publishes it once committed. Nothing is written for a bad
// request. It answers 202 Accepted: the order is on its way, not done, and
// its Location says where to follow it.
func (h *handlers) place(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !jsonContentType(ct) {
		httpjson.WriteError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send the order as application/json", ct))
		return
	}
	key, err := idempotencyKey(r)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	req, status, err := decodePlaceRequest(w, r)
	if err != nil {
		httpjson.WriteError(w, status, err.Error())
		return
	}
	ev, err := validate(req)
	if err != nil {
		httpjson.WriteError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	if key != "" {
		ev.OrderID = IDForKey(ev.Customer, key)
	} else {
		ev.OrderID = newOrderID()
	}
	placed, err := h.placeTx(r.Context(), ev, key)
	switch {
	case errors.Is(err, errKeyReused):
		httpjson.WriteError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		h.log.Error("order: could not place order "+ev.OrderID, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the order could not be placed right now; try again (with the same Idempotency-Key, if you sent one)")
		return
	}
	h.accepted(w, ev.OrderID, !placed)
}

// placeTx records order ev and writes its event in one transaction, and
// reports whether it placed it: false when key placed it before.
func (h *handlers) placeTx(ctx context.Context, ev PlacedV1, key string) (bool, error) {
	db, err := h.rm.db()
	if err != nil {
		return false, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if key != "" {
		fresh, err := h.rm.claimKey(ctx, tx, ev.Customer, key, ev.OrderID, fingerprint(ev))
		if err != nil || !fresh {
			return false, err
		}
	}
	if err := h.rm.place(ctx, tx, ev, time.Now().UTC()); err != nil {
		return false, err
	}
	// The event's id is derived from the order id, which a retried request
	// with the same key derives again.
	ctx = troupe.WithCorrelationID(troupe.WithIdempotencyKey(outbox.WithOutbox(ctx, h.rm.ob), ev.OrderID), ev.OrderID)
	if err := outbox.PublishTx(ctx, tx, Placed, ev); err != nil {
		return false, err
	}
	// Logged before the commit: once committed, the next step may log first.
	h.log.Info(fmt.Sprintf("order: placing order %s: %s", ev.OrderID, ev.Summary()))
	return true, tx.Commit()
}

func (h *handlers) accepted(w http.ResponseWriter, id string, replayed bool) {
	self := orderPath(id)
	w.Header().Set("Location", self)
	httpjson.WriteJSON(w, http.StatusAccepted, Accepted{ID: id, Status: StatusPlaced, Replayed: replayed, Links: Links{Self: self}})
}

// get serves one order with its timeline.
func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if !api.ValidRef(id) {
		httpjson.WriteError(w, http.StatusBadRequest, "an order id is 1 to 100 printable characters")
		return
	}
	o, ok, err := h.rm.get(r.Context(), id)
	if err != nil {
		h.unavailable(w, "order "+id, err)
		return
	}
	if !ok {
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("no order %q", id))
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, o)
}

// List is the body of GET /orders: the totals of every order and the
// newest orders that match the query.
type List struct {
	Totals
	Orders []Summary `json:"orders"`
}

// list serves GET /orders[?status=S][&limit=N].
func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := httpjson.CheckQuery(q, "status", "limit"); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	status := Status(q.Get("status"))
	if _, ok := rank[status]; status != "" && !ok {
		httpjson.WriteError(w, http.StatusBadRequest, fmt.Sprintf("status %q: use one of placed, paid, confirmed, assigned, cancelled, refunded", status))
		return
	}
	limit := listDefault
	if s := q.Get("limit"); s != "" || q.Has("limit") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > listMax {
			httpjson.WriteError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: use a whole number from 1 to %d", s, listMax))
			return
		}
		limit = n
	}
	t, orders, err := h.rm.list(r.Context(), status, limit)
	if err != nil {
		h.unavailable(w, "orders", err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, List{Totals: t, Orders: orders})
}

// index serves GET / with the routes to try, and a JSON 404 for any other
// path no route takes.
func (h *handlers) index(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("no resource at %s; GET / lists the routes", r.URL.Path))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		httpjson.WriteError(w, http.StatusMethodNotAllowed, "/ takes GET")
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{
		"app": "food delivery: order → payment → restaurant → delivery partner, loyalty and notification, with refunds when the restaurant fails",
		"routes": []string{
			"POST /orders          place an order (header Idempotency-Key optional)",
			"GET  /orders          totals by status and the newest orders (?status=refunded&limit=10)",
			"GET  /orders/{id}     one order, its status and its timeline",
			"GET  /ledger          the payment service's books: charged, reversed, duplicates ignored",
			"GET  /notifications   what customers were told (?order=ID or ?customer=NAME)",
			"GET  /loyalty/{customer}  a customer's loyalty points",
		},
	})
}

// jsonContentType reports whether a request with Content-Type ct may
// carry a JSON order: application/json and its +json kin, and curl -d's
// default, application/x-www-form-urlencoded, so the README's curl lines
// work as typed (a body that is not JSON fails to decode anyway).
func jsonContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "application/x-www-form-urlencoded")
}

// idempotencyKey returns the Idempotency-Key header, checked.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values("Idempotency-Key")
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", errors.New("send one Idempotency-Key header")
	}
	k := vals[0]
	if k == "" || len(k) > maxKeyLen {
		return "", fmt.Errorf("Idempotency-Key must be 1 to %d characters", maxKeyLen)
	}
	for _, c := range k {
		if c <= 0x20 || c >= 0x7f {
			return "", errors.New("Idempotency-Key must be printable ASCII without spaces, such as a UUID")
		}
	}
	return k, nil
}

// decodePlaceRequest reads the body of POST /orders strictly: one JSON
// object, no unknown fields, at most maxBodyBytes. Its errors are written
// for the client, with the status to answer.
func decodePlaceRequest(w http.ResponseWriter, r *http.Request) (placeRequest, int, error) {
	var req placeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("request body has more after the order; send one JSON object")
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return req, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d KiB", maxBodyBytes>>10)
	}
	if err != nil {
		return req, http.StatusBadRequest, describeJSONError(err)
	}
	return req, 0, nil
}

// describeJSONError turns an encoding/json error into a sentence about the
// request body.
func describeJSONError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New(`request body is empty; send an order such as {"customer":"ada","restaurant":"napoli","items":[{"name":"margherita","qty":2,"price_cents":950}]}`)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("request body is not valid JSON: it ends too early")
	case errors.As(err, &syntax):
		return fmt.Errorf("request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Errorf("request body must be a JSON object, not a JSON %s", typ.Value)
		}
		return fmt.Errorf("%s must be of type %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no error type for this; its message is stable.
		return fmt.Errorf("unknown field %s: an order has customer, restaurant and items; an item has name, qty and price_cents",
			strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return fmt.Errorf("request body is not valid JSON: %v", err)
}

// validate checks an order request against the limits and totals it. It
// reports every problem at once, so a client fixes them in one go.
func validate(req placeRequest) (PlacedV1, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	name := func(field, v string) string {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			bad("%s is required", field)
		case len(v) > maxNameLen:
			bad("%s must be at most %d characters", field, maxNameLen)
		case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			bad("%s must not contain control characters", field)
		}
		return v
	}
	ev := PlacedV1{Customer: name("customer", req.Customer), Restaurant: name("restaurant", req.Restaurant)}
	switch {
	case len(req.Items) == 0:
		bad("items must list at least one item")
	case len(req.Items) > maxItems:
		bad("items must list at most %d items", maxItems)
	}
	for i, it := range req.Items {
		it.Name = name(fmt.Sprintf("items[%d].name", i), it.Name)
		switch {
		case it.Qty < 1:
			bad("items[%d].qty must be at least 1, got %d", i, it.Qty)
		case it.Qty > maxQty:
			bad("items[%d].qty must be at most %d, got %d", i, maxQty, it.Qty)
		}
		switch {
		case it.PriceCents < 1:
			bad("items[%d].price_cents must be at least 1, got %d", i, it.PriceCents)
		case it.PriceCents > maxPriceCents:
			bad("items[%d].price_cents must be at most %d, got %d", i, maxPriceCents, it.PriceCents)
		}
		ev.Items = append(ev.Items, it)
		ev.TotalCents += it.PriceCents * int64(it.Qty)
	}
	if len(problems) > 0 {
		return PlacedV1{}, errors.New(strings.Join(problems, "; "))
	}
	return ev, nil
}

// newOrderID returns 12 random hex digits: short enough to read in a log
// line, random enough that a demo never sees two alike.
func newOrderID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return hex.EncodeToString(b)
}

// IDForKey returns the id POST /orders gives an order that customer sends
// with Idempotency-Key key. It is derived from both, so a retried request
// names the same order even after the order service restarts.
func IDForKey(customer, key string) string {
	sum := sha256.Sum256([]byte(customer + "\x00" + key))
	return hex.EncodeToString(sum[:6])
}

func fingerprint(p PlacedV1) string {
	b, _ := json.Marshal(p) // a PlacedV1 always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// unavailable answers 503 for a read the database failed, and logs why.
func (h *handlers) unavailable(w http.ResponseWriter, what string, err error) {
	h.log.Error("order: could not read "+what, "err", err)
	httpjson.WriteError(w, http.StatusServiceUnavailable, "the order service cannot read its database right now; try again")
}
