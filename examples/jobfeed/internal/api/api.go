// Package api holds what the job feed's HTTP APIs share beyond
// examples/internal/httpjson: a strict JSON body decoder and checks of ids
// and text.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode"
)

// MaxBodyBytes bounds every request body the job feed accepts.
const MaxBodyBytes = 64 << 10

// Decode reads r's body into v strictly: exactly one JSON object, no field
// v does not have, at most MaxBodyBytes. example is a valid body, quoted in
// the error for an empty one. On failure it returns the status to answer
// (400 or 413) and a sentence for the client.
func Decode(w http.ResponseWriter, r *http.Request, v any, example string) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			return http.StatusBadRequest, errors.New("the request body holds more than one JSON value; send one object")
		}
		return 0, nil
	}
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("the request body is larger than %d KiB", MaxBodyBytes>>10)
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, fmt.Errorf("the request body is empty; send a JSON object such as %s", example)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, errors.New("the request body is not valid JSON: it ends too early")
	case errors.As(err, &syntax):
		return http.StatusBadRequest, fmt.Errorf("the request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return http.StatusBadRequest, fmt.Errorf("the request body must be a JSON object, not a JSON %s", typ.Value)
		}
		return http.StatusBadRequest, fmt.Errorf("%s must be %s, not a JSON %s", typ.Field, jsonKind(typ.Type), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no error type for this; its message is stable.
		return http.StatusBadRequest, fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return http.StatusBadRequest, fmt.Errorf("the request body is not valid JSON: %v", err)
}

// jsonKind names what JSON value decodes into t, for error messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonKind(t.Elem()), "a "), "an ") + "s"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a JSON " + t.String()
}

// ValidID reports whether s can be a candidate or job id in a URL: 1 to 64
// characters, letters, digits and '-' only.
func ValidID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if r > unicode.MaxASCII || !(r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return false
		}
	}
	return true
}

// HasControl reports whether s holds a control character other than
// newline, carriage return or tab.
func HasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t'
	})
}
