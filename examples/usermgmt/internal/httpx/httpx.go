// Package httpx holds what the user-management services' HTTP APIs share
// beyond examples/internal/httpjson: a strict JSON body reader.
package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds every request body the services read.
const MaxBodyBytes = 64 << 10

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
