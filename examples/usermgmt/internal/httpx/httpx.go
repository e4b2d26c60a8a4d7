// Package httpx holds the small HTTP helpers the user-management services
// share: JSON answers, JSON errors, a strict JSON body reader, and JSON
// 404/405 answers where http.ServeMux would answer in plain text.
package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// MaxBodyBytes bounds every request body the services read.
const MaxBodyBytes = 64 << 10

// WriteJSON answers with v as indented JSON and the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // Message-IDs have angle brackets; keep them readable
	_ = enc.Encode(v)        // the client went away; nothing left to tell it
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// WriteError answers with status and {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, Error{Error: msg})
}

// DecodeBody reads r's body into v strictly: one JSON object, no unknown
// fields, at most MaxBodyBytes. example is a valid body, quoted in the
// error for an empty one. On failure it returns the status to answer
// (400 or 413) and a sentence for the client.
func DecodeBody(w http.ResponseWriter, r *http.Request, v any, example string) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			return http.StatusBadRequest, errors.New("request body has more after the first JSON value; send one JSON object")
		}
		return 0, nil
	}
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d KiB", MaxBodyBytes>>10)
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, fmt.Errorf("request body is empty; send a JSON object such as %s", example)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, errors.New("request body is not valid JSON: it ends too early")
	case errors.As(err, &syntax):
		return http.StatusBadRequest, fmt.Errorf("request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return http.StatusBadRequest, fmt.Errorf("request body must be a JSON object, not a JSON %s", typ.Value)
		}
		return http.StatusBadRequest, fmt.Errorf("%s must be a JSON %s, not a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no error type for this; its message is stable.
		return http.StatusBadRequest, fmt.Errorf("unknown field %s; send a JSON object such as %s",
			strings.TrimPrefix(err.Error(), "json: unknown field "), example)
	}
	return http.StatusBadRequest, fmt.Errorf("request body is not valid JSON: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int64", "float64":
		return "number"
	case "bool":
		return "boolean"
	}
	return goKind
}

// Fallback returns a handler for a path whose real routes are registered
// per method ("GET /users/{id}"): ServeMux sends it the requests those
// routes do not take, and it answers 405 with an Allow header and a JSON
// error instead of ServeMux's plain text. Register it under the bare
// pattern ("/users/{id}"); the method patterns are more specific and win.
func Fallback(path string, allow ...string) http.HandlerFunc {
	allowed := strings.Join(allow, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(allow, r.Method) || (r.Method == http.MethodHead && slices.Contains(allow, http.MethodGet)) {
			WriteError(w, http.StatusNotFound, fmt.Sprintf("no resource at %s", r.URL.Path))
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
