package httpjson

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		want string // the key, or a part of the error
		ok   bool
	}{
		{nil, "", true},
		{[]string{"order-7/charge"}, "order-7/charge", true},
		{[]string{"a", "b"}, "send one", false},
		{[]string{""}, "1 to 200", false},
		{[]string{strings.Repeat("k", 201)}, "1 to 200", false},
		{[]string{"a b"}, "printable ASCII", false},
		{[]string{"clé"}, "printable ASCII", false},
	} {
		r := httptest.NewRequest("POST", "/orders", nil)
		for _, k := range tc.keys {
			r.Header.Add("Idempotency-Key", k)
		}
		got, err := IdempotencyKey(r)
		if tc.ok && (err != nil || got != tc.want) || !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %q, %v; want %q (ok %v)", tc.keys, got, err, tc.want, tc.ok)
		}
	}
}
