package orders

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/troupe-go/troupe/examples/internal/httpjson"
)

// Limits of what POST /orders accepts.
const (
	maxBodyBytes   = 64 << 10
	maxCustomerLen = 100
	maxItems       = 50
	maxQty         = 100
	maxKeyLen      = 255
)

// api serves the orders service's HTTP routes.
type api struct {
	log *slog.Logger
	rm  *readModel
}

// placeRequest is the body of POST /orders.
type placeRequest struct {
	Customer string `json:"customer"`
	Items    []Item `json:"items"`
}

// placeResponse is the body of a successful POST /orders.
type placeResponse struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	Links  Links  `json:"links"`
}

// IdempotencyKeyHeader names the request header that makes POST /orders
// safe to retry: a request with a key already used answers with the order
// placed under it and places nothing.
const IdempotencyKeyHeader = "Idempotency-Key"

// place accepts an order: it validates the body, stores the order and
// writes order_placed to the outbox in one transaction, with the order id
// as correlation id, so every later event of the order carries it. Nothing
// is stored or published for a bad request.
func (a *api) place(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get(IdempotencyKeyHeader)
	if msg := checkKey(key, r.Header.Values(IdempotencyKeyHeader)); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	req, status, err := decodePlaceRequest(w, r)
	if err != nil {
		httpjson.WriteError(w, status, err.Error())
		return
	}
	ev, err := validate(req)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	ev.OrderID = newOrderID()
	id, created, err := a.rm.place(r.Context(), ev, key, fingerprint(ev), time.Now().UTC())
	switch {
	case errors.Is(err, errKeyReused):
		httpjson.WriteError(w, http.StatusUnprocessableEntity, err.Error())
		return
	case err != nil:
		a.log.Error("orders: could not place an order", "customer", ev.Customer, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the order could not be placed right now; try again (with the same Idempotency-Key, if you sent one)")
		return
	case created:
		a.log.Info(fmt.Sprintf("orders: placed order %s: %s", id, ev.Summary()))
	default:
		w.Header().Set("Idempotent-Replayed", "true")
	}
	self := orderPath(id)
	w.Header().Set("Location", self)
	httpjson.WriteJSON(w, http.StatusCreated, placeResponse{ID: id, Status: StatusPlaced, Links: Links{Self: self}})
}

// checkKey returns what is wrong with an Idempotency-Key header, or "".
func checkKey(key string, all []string) string {
	if len(all) > 1 {
		return "send one Idempotency-Key header, not " + fmt.Sprint(len(all))
	}
	if len(all) == 0 {
		return ""
	}
	ok := key != "" && len(key) <= maxKeyLen
	for i := 0; ok && i < len(key); i++ {
		ok = key[i] > ' ' && key[i] < 0x7f
	}
	if !ok {
		return fmt.Sprintf("Idempotency-Key must be 1 to %d visible ASCII characters (a UUID, say), got %q", maxKeyLen, key)
	}
	return ""
}

// fingerprint identifies what an order asks for, so that a key reused for
// another order is caught.
func fingerprint(p PlacedV1) string {
	b, _ := json.Marshal(struct {
		Customer string
		Lines    []Line
	}{p.Customer, p.Lines}) // cannot fail: strings and numbers
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// get serves one order with its timeline.
func (a *api) get(w http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	id := r.PathValue("id")
	o, ok, err := a.rm.get(r.Context(), id)
	switch {
	case err != nil:
		a.storeError(w, "read order "+id, err)
	case !ok:
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("no order %q", id))
	default:
		httpjson.WriteJSON(w, http.StatusOK, o)
	}
}

// listLimit bounds how many orders GET /orders lists.
const listLimit = 100

// list serves the counts of every order and the newest of them.
func (a *api) list(w http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	l, err := a.rm.list(r.Context(), listLimit)
	if err != nil {
		a.storeError(w, "list orders", err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, l)
}

func (a *api) storeError(w http.ResponseWriter, what string, err error) {
	a.log.Error("orders: "+what, "err", err)
	httpjson.WriteError(w, http.StatusServiceUnavailable, "the order store does not answer right now; try again")
}

// decodePlaceRequest reads the body of POST /orders strictly: one JSON
// object, no unknown fields, at most maxBodyBytes. Its errors are written
// for the client, with the HTTP status to answer.
func decodePlaceRequest(w http.ResponseWriter, r *http.Request) (placeRequest, int, error) {
	var req placeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("request body has more after the order; send one JSON object")
	} else if err != nil {
		err = describeJSONError(err)
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return req, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d KiB", maxBodyBytes>>10)
	}
	if err != nil {
		return req, http.StatusBadRequest, err
	}
	return req, 0, nil
}

// describeJSONError turns an encoding/json error into a sentence about the
// request body.
func describeJSONError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.Is(err, io.EOF):
		return errors.New(`request body is empty; send an order such as {"customer":"ada","items":[{"sku":"book","qty":2}]}`)
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
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return fmt.Errorf("unknown field %s: an order has only customer and items, and an item only sku and qty", field)
	}
	return fmt.Errorf("request body is not valid JSON: %v", err)
}

// validate checks an order request against the catalog and the limits and
// prices it. It reports every problem at once, so a client fixes them in one
// go.
func validate(req placeRequest) (PlacedV1, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	ev := PlacedV1{Customer: strings.TrimSpace(req.Customer), Total: Money{Currency: Currency}}
	switch {
	case ev.Customer == "":
		bad("customer is required")
	case len(ev.Customer) > maxCustomerLen:
		bad("customer must be at most %d characters", maxCustomerLen)
	}
	switch {
	case len(req.Items) == 0:
		bad("items must list at least one item")
	case len(req.Items) > maxItems:
		bad("items must list at most %d items", maxItems)
	}
	for i, it := range req.Items {
		sku := strings.TrimSpace(it.SKU)
		unit, known := price(sku)
		switch {
		case sku == "":
			bad("items[%d].sku is required", i)
		case !known:
			bad("items[%d].sku %q is not sold here; the catalog has %s", i, sku, skuList())
		}
		switch {
		case it.Qty < 1:
			bad("items[%d].qty must be at least 1, got %d", i, it.Qty)
		case it.Qty > maxQty:
			bad("items[%d].qty must be at most %d, got %d", i, maxQty, it.Qty)
		}
		ev.Lines = append(ev.Lines, Line{SKU: sku, Qty: it.Qty, UnitPrice: unit})
		ev.Total.Cents += unit.Cents * int64(it.Qty)
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
