package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/shop/orders"
)

// Stock is a number of units per SKU. As a flag.Value it reads
// "book=500,pen=1000": each SKU it names gets that many units, the others
// keep theirs.
type Stock map[string]int

// DefaultStock is what the warehouse holds when a new database starts:
// 500 books, 50 lamps, 200 mugs, 1000 pens and 300 teas.
func DefaultStock() Stock {
	return Stock{"book": 500, "lamp": 50, "mug": 200, "pen": 1000, "tea": 300}
}

// maxUnits bounds one SKU's stock in a flag and one replenishment.
const maxUnits = 1_000_000

// String writes s as "book=500,lamp=50", SKUs sorted.
func (s Stock) String() string {
	var parts []string
	for _, sku := range slices.Sorted(maps.Keys(s)) {
		parts = append(parts, fmt.Sprintf("%s=%d", sku, s[sku]))
	}
	return strings.Join(parts, ",")
}

// Set reads "sku=units,…" into s; it fails on a SKU the shop does not sell
// or a count outside 0 to 1,000,000, naming what to give instead.
func (s Stock) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		sku, n, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%q is not sku=units; give a list such as book=500,pen=1000", part)
		}
		if !orders.Sells(sku) {
			return fmt.Errorf("%q is not sold here; the catalog has %s", sku, strings.Join(orders.SKUs(), ", "))
		}
		units, err := strconv.Atoi(n)
		if err != nil || units < 0 || units > maxUnits {
			return fmt.Errorf("%s=%s: give a whole number of units from 0 to %d", sku, n, maxUnits)
		}
		s[sku] = units
	}
	return nil
}

// Level is one SKU in the body of GET and POST /stock.
type Level struct {
	SKU string `json:"sku"`
	// OnShelf is what can still be reserved.
	OnShelf int64 `json:"on_shelf"`
	// Reserved is what orders have taken.
	Reserved int64 `json:"reserved"`
}

// Levels is the body of GET /stock, and of POST /stock after the delivery.
type Levels struct {
	Stock []Level `json:"stock"`
}

func (w *warehouse) levels(r *http.Request) (Levels, error) {
	rows, err := w.ob.DB().QueryContext(r.Context(), `SELECT s.sku, s.units, CAST(coalesce(r.qty, 0) AS BIGINT)
		FROM inventory_stock s LEFT JOIN (SELECT sku, sum(qty) AS qty FROM inventory_reservations GROUP BY sku) r ON r.sku = s.sku
		ORDER BY s.sku`)
	if err != nil {
		return Levels{}, err
	}
	defer rows.Close()
	l := Levels{Stock: []Level{}}
	for rows.Next() {
		var lv Level
		if err := rows.Scan(&lv.SKU, &lv.OnShelf, &lv.Reserved); err != nil {
			return Levels{}, err
		}
		l.Stock = append(l.Stock, lv)
	}
	return l, rows.Err()
}

// serveStock serves GET /stock.
func (w *warehouse) serveStock(rw http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(rw, http.StatusBadRequest, msg)
		return
	}
	l, err := w.levels(r)
	if err != nil {
		w.storeError(rw, err)
		return
	}
	httpjson.WriteJSON(rw, http.StatusOK, l)
}

// delivery is the body of POST /stock.
type delivery struct {
	Items []struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	} `json:"items"`
}

// Limits of what POST /stock accepts.
const (
	maxBodyBytes = 64 << 10
	maxItems     = 50
	maxKeyLen    = 255
)

// replenish serves POST /stock: it adds the delivered units to the shelf,
// in one transaction, and answers with the new levels. With an
// Idempotency-Key already used for the same delivery it adds nothing and
// answers the same; with one used for another delivery, 422.
func (w *warehouse) replenish(rw http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(rw, http.StatusBadRequest, msg)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if keys := r.Header.Values("Idempotency-Key"); len(keys) > 1 || (len(keys) == 1 && !validKey(key)) {
		httpjson.WriteError(rw, http.StatusBadRequest, fmt.Sprintf("send one Idempotency-Key header of 1 to %d visible ASCII characters", maxKeyLen))
		return
	}
	add, status, err := decodeDelivery(rw, r)
	if err != nil {
		httpjson.WriteError(rw, status, err.Error())
		return
	}
	tx, err := w.ob.DB().BeginTx(r.Context(), nil)
	if err != nil {
		w.storeError(rw, err)
		return
	}
	defer tx.Rollback()
	if key != "" {
		sum := sha256.Sum256([]byte(add.String()))
		hash := hex.EncodeToString(sum[:16])
		res, err := tx.ExecContext(r.Context(), store.Q(w.ob, `INSERT INTO inventory_deliveries (idem_key, request_hash, received_us) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`),
			key, hash, time.Now().UnixMicro())
		if err != nil {
			w.storeError(rw, err)
			return
		}
		if n, err := res.RowsAffected(); err != nil {
			w.storeError(rw, err)
			return
		} else if n == 0 {
			var was string
			if err := tx.QueryRowContext(r.Context(), store.Q(w.ob, `SELECT request_hash FROM inventory_deliveries WHERE idem_key = ?`), key).Scan(&was); err != nil {
				w.storeError(rw, err)
				return
			}
			if was != hash {
				httpjson.WriteError(rw, http.StatusUnprocessableEntity, "this Idempotency-Key was used for a different delivery; send a new key for a new delivery")
				return
			}
			tx.Rollback()
			rw.Header().Set("Idempotent-Replayed", "true")
			w.answerLevels(rw, r)
			return
		}
	}
	for _, sku := range slices.Sorted(maps.Keys(add)) {
		_, err := tx.ExecContext(r.Context(), store.Q(w.ob, `INSERT INTO inventory_stock (sku, units) VALUES (?, ?)
			ON CONFLICT (sku) DO UPDATE SET units = inventory_stock.units + excluded.units`), sku, add[sku])
		if err != nil {
			w.storeError(rw, err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		w.storeError(rw, err)
		return
	}
	w.log.Info("inventory: replenished " + add.String())
	w.answerLevels(rw, r)
}

func (w *warehouse) answerLevels(rw http.ResponseWriter, r *http.Request) {
	l, err := w.levels(r)
	if err != nil {
		w.storeError(rw, err)
		return
	}
	httpjson.WriteJSON(rw, http.StatusOK, l)
}

func (w *warehouse) storeError(rw http.ResponseWriter, err error) {
	w.log.Error("inventory: stock", "err", err)
	httpjson.WriteError(rw, http.StatusServiceUnavailable, "the stock does not answer right now; try again")
}

func validKey(k string) bool {
	if k == "" || len(k) > maxKeyLen {
		return false
	}
	for i := range len(k) {
		if k[i] <= ' ' || k[i] >= 0x7f {
			return false
		}
	}
	return true
}

// decodeDelivery reads and checks the body of POST /stock, reporting every
// problem at once, and returns the units to add per SKU.
func decodeDelivery(rw http.ResponseWriter, r *http.Request) (Stock, int, error) {
	var d delivery
	dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(&d)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("request body has more after the delivery; send one JSON object")
	}
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
	case errors.As(err, &tooLarge):
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d KiB", maxBodyBytes>>10)
	case errors.Is(err, io.EOF):
		return nil, http.StatusBadRequest, errors.New(`request body is empty; send a delivery such as {"items":[{"sku":"book","qty":100}]}`)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, http.StatusBadRequest, errors.New("request body is not valid JSON: it ends too early")
	case errors.As(err, &syntax):
		return nil, http.StatusBadRequest, fmt.Errorf("request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return nil, http.StatusBadRequest, fmt.Errorf("request body must be a JSON object, not a JSON %s", typ.Value)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("%s must be of type %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no error type for this; its message is stable.
		return nil, http.StatusBadRequest, fmt.Errorf("unknown field %s: a delivery has only items, and an item only sku and qty",
			strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return nil, http.StatusBadRequest, fmt.Errorf("request body is not valid JSON: %v", err)
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	switch {
	case len(d.Items) == 0:
		bad("items must list at least one item")
	case len(d.Items) > maxItems:
		bad("items must list at most %d items", maxItems)
	}
	add := Stock{}
	for i, it := range d.Items {
		switch {
		case it.SKU == "":
			bad("items[%d].sku is required", i)
		case !orders.Sells(it.SKU):
			bad("items[%d].sku %q is not sold here; the catalog has %s", i, it.SKU, strings.Join(orders.SKUs(), ", "))
		}
		if it.Qty < 1 || it.Qty > maxUnits {
			bad("items[%d].qty must be from 1 to %d, got %d", i, maxUnits, it.Qty)
		}
		add[it.SKU] += it.Qty
	}
	if len(problems) > 0 {
		return nil, http.StatusBadRequest, errors.New(strings.Join(problems, "; "))
	}
	return add, 0, nil
}
