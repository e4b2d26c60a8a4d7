// Package apitest is what the examples' tests of their HTTP APIs share: one
// client and the two calls every such test makes.
package apitest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Client is the HTTP client of these calls. Tests call
// Client.CloseIdleConnections before their app stops, so that a connection
// dialled but never used does not hold the server's shutdown.
var Client = &http.Client{Timeout: 10 * time.Second}

// Do sends a request, with body as JSON when it is not empty and header as
// name, value pairs, and returns the status, the body and the headers. A
// request that cannot be sent or read fails the test.
func Do(t testing.TB, method, url, body string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// GetJSON GETs url, expects 200 and decodes the body into v; anything else
// fails the test.
func GetJSON(t testing.TB, url string, v any) {
	t.Helper()
	status, b, _ := Do(t, "GET", url, "")
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}
