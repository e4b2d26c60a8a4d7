// Package api holds the small HTTP helpers the food-delivery services share:
// JSON answers, JSON errors, and JSON 404/405 answers where http.ServeMux
// would answer in plain text.
package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// WriteJSON answers with v as indented JSON and the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}

// Error is the body of every error answer: {"error": "..."}.
type Error struct {
	Error string `json:"error"`
}

// WriteError answers with status and {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, Error{Error: msg})
}

// Fallback returns a handler for a path whose real routes are registered
// per method ("GET /ledger"): ServeMux sends it the requests those routes
// do not take, and it answers 405 with an Allow header and a JSON error
// instead of ServeMux's plain text. Register it with the bare pattern
// ("/ledger"); the method patterns are more specific and win.
func Fallback(path string, allow ...string) http.HandlerFunc {
	allowed := strings.Join(allow, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(allow, r.Method) || (r.Method == http.MethodHead && slices.Contains(allow, http.MethodGet)) {
			// The method is served, so the path did not match a route.
			WriteError(w, http.StatusNotFound, fmt.Sprintf("no resource at %s", r.URL.Path))
			return
		}
		w.Header().Set("Allow", allowed)
		WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s does not take %s; it takes %s", path, r.Method, allowed))
	}
}

// CheckQuery rejects query parameters other than allowed, so a typo such as
// ?stauts=refunded is an error instead of being ignored. It returns a
// sentence for the client, or "" when the query is fine.
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

// ValidRef reports whether s can be an order id or a customer name in a
// URL: 1 to 100 characters, none of them a control character.
func ValidRef(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
