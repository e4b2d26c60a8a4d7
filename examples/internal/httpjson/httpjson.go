// Package httpjson holds the HTTP helpers every example's API shares: JSON
// answers, JSON error bodies, JSON 404 and 405 answers where http.ServeMux
// would answer in plain text, and a check that rejects unknown query
// parameters, and the Idempotency-Key header every POST that creates a
// transaction takes. Reading request bodies stays in each example, whose
// messages name its own fields.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Error is the body of every error answer: {"error": "..."}.
type Error struct {
	Error string `json:"error"`
}

// WriteJSON answers with v as indented JSON and the given status. It does
// not escape <, > and &, so ids such as mail Message-IDs stay readable.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}

// WriteError answers with status and {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, Error{Error: msg})
}

// Fallback returns a handler for a path whose real routes are registered
// per method ("GET /orders/{id}"): ServeMux hands it the requests those
// routes do not take. A method the path serves means the path itself did
// not match (404); any other method gets 405 with an Allow header. Register
// it under the method-less pattern ("/orders/{id}"); the method patterns
// are more specific and win.
func Fallback(path string, allow ...string) http.HandlerFunc {
	allowed := strings.Join(allow, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(allow, r.Method) || (r.Method == http.MethodHead && slices.Contains(allow, http.MethodGet)) {
			WriteError(w, http.StatusNotFound, "no resource at "+r.URL.Path)
			return
		}
		w.Header().Set("Allow", allowed)
		WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s does not take %s; it takes %s", path, r.Method, allowed))
	}
}

// CheckQuery rejects query parameters other than allowed, so that a typo
// is an error rather than ignored. It returns a sentence for the client,
// or "" when the query is fine.
func CheckQuery(q url.Values, allowed ...string) string {
	var unknown []string
	for k := range q {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) == 0 {
		return ""
	}
	slices.Sort(unknown)
	if len(allowed) == 0 {
		return fmt.Sprintf("unknown query parameter %s: this resource takes none", strings.Join(unknown, ", "))
	}
	return fmt.Sprintf("unknown query parameter %s: this resource takes %s", strings.Join(unknown, ", "), strings.Join(allowed, ", "))
}

// MaxIdempotencyKey is the longest Idempotency-Key [IdempotencyKey] takes.
const MaxIdempotencyKey = 200

// IdempotencyKey returns the request's Idempotency-Key header: "" when
// there is none, or an error for the client (answer 400) when it is sent
// twice, empty, longer than [MaxIdempotencyKey], or not printable ASCII
// without spaces.
func IdempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values("Idempotency-Key")
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", errors.New("send one Idempotency-Key header")
	}
	k := vals[0]
	if k == "" || len(k) > MaxIdempotencyKey {
		return "", fmt.Errorf("Idempotency-Key must be 1 to %d characters", MaxIdempotencyKey)
	}
	for _, c := range k {
		if c <= 0x20 || c >= 0x7f {
			return "", errors.New("Idempotency-Key must be printable ASCII without spaces, such as a UUID")
		}
	}
	return k, nil
}
