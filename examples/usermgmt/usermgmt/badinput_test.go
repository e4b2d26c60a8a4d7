package usermgmt_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
	"github.com/troupe-go/troupe/troupetest"
)

// TestBadRequests sends bad requests to every endpoint: each gets a 4xx
// with a JSON error that says what is wrong, and none writes or publishes
// anything.
func TestBadRequests(t *testing.T) {
	var registered *troupetest.Observer[users.RegisteredV1]
	var deleted *troupetest.Observer[users.DeletedV1]
	s := startSystem(t, &usermgmt.Options{}, func(app *troupe.App) {
		registered = troupetest.Observe(t, app, users.Registered)
		deleted = troupetest.Observe(t, app, users.Deleted)
	})
	// One user exists, for the conflict case.
	taken := register(t, s, "Ada", "ada@example.com", http.StatusAccepted)
	registered.WaitCorrelation(t, taken.ID)
	const unknownID = "0123456789abcdef"

	for _, tc := range []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		wantErr                  []string // substrings of the error message
	}{
		{"empty body", "POST", "/users", ``, nil, 400, []string{"body is empty", "ada@example.com"}},
		{"not JSON", "POST", "/users", `name=ada`, nil, 400, []string{"not valid JSON"}},
		{"truncated JSON", "POST", "/users", `{"name":"ada",`, nil, 400, []string{"not valid JSON"}},
		{"array", "POST", "/users", `[]`, nil, 400, []string{"must be a JSON object"}},
		{"two objects", "POST", "/users", `{"name":"a","email":"a@example.com"} {}`, nil, 400, []string{"send one JSON object"}},
		{"unknown field", "POST", "/users", `{"name":"a","email":"a@example.com","admin":true}`, nil, 400, []string{`unknown field "admin"`}},
		{"name as number", "POST", "/users", `{"name":7,"email":"a@example.com"}`, nil, 400, []string{"name must be a JSON string"}},
		{"missing name", "POST", "/users", `{"email":"a@example.com"}`, nil, 400, []string{"name is required"}},
		{"blank name", "POST", "/users", `{"name":"  ","email":"a@example.com"}`, nil, 400, []string{"name is required"}},
		{"long name", "POST", "/users", `{"name":"` + strings.Repeat("n", 101) + `","email":"a@example.com"}`, nil, 400, []string{"at most 100"}},
		{"control in name", "POST", "/users", `{"name":"a\r\nBcc: x@example.com","email":"a@example.com"}`, nil, 400, []string{"control characters"}},
		{"missing email", "POST", "/users", `{"name":"a"}`, nil, 400, []string{"email is required"}},
		{"email without @", "POST", "/users", `{"name":"a","email":"ada.example.com"}`, nil, 400, []string{"is not an address"}},
		{"email with name", "POST", "/users", `{"name":"a","email":"Ada <ada2@example.com>"}`, nil, 400, []string{"is not an address"}},
		{"email without dot", "POST", "/users", `{"name":"a","email":"ada@localhost"}`, nil, 400, []string{"is not an address"}},
		{"long email", "POST", "/users", `{"name":"a","email":"` + strings.Repeat("a", 250) + `@example.com"}`, nil, 400, []string{"at most 254"}},
		{"several problems", "POST", "/users", `{"name":"","email":""}`, nil, 400, []string{"name is required", "email is required"}},
		{"too large", "POST", "/users", `{"name":"` + strings.Repeat("a", 70<<10) + `"}`, nil, 413, []string{"larger than 64 KiB"}},
		{"query on POST", "POST", "/users?wait=5", `{"name":"b","email":"b@example.com"}`, nil, 400, []string{`unknown query parameter "wait"`}},
		{"wait not a number", "POST", "/users", `{"name":"b","email":"b@example.com"}`, []string{"Prefer: wait=soon"}, 400, []string{"Prefer: wait=soon", "from 1 to 30"}},
		{"wait zero", "POST", "/users", `{"name":"b","email":"b@example.com"}`, []string{"Prefer: wait=0"}, 400, []string{"from 1 to 30"}},
		{"wait too long", "POST", "/users", `{"name":"b","email":"b@example.com"}`, []string{"Prefer: respond-async, wait=3600"}, 400, []string{"from 1 to 30"}},
		{"email taken", "POST", "/users", `{"name":"Other Ada","email":"ada@EXAMPLE.com"}`, nil, 409, []string{"exists already", taken.Links.Self}},
		{"wrong method on /users", "PUT", "/users", `{}`, nil, 405, []string{"takes GET, POST"}},
		{"query on GET /users", "GET", "/users?status=sent", ``, nil, 400, []string{`unknown query parameter "status"`}},
		{"idempotency key with a space", "POST", "/users", `{"name":"b","email":"b@example.com"}`, []string{"Idempotency-Key: a b"}, 400, []string{"Idempotency-Key must be printable ASCII"}},
		{"idempotency key too long", "POST", "/users", `{"name":"b","email":"b@example.com"}`, []string{"Idempotency-Key: " + strings.Repeat("k", 201)}, 400, []string{"Idempotency-Key must be 1 to 200"}},
		{"two idempotency keys", "POST", "/users", `{"name":"b","email":"b@example.com"}`, []string{"Idempotency-Key: k1", "Idempotency-Key: k2"}, 400, []string{"send one Idempotency-Key"}},
		{"bad id", "GET", "/users/ada", ``, nil, 400, []string{`"ada" is not a user id`}},
		{"upper-case id", "GET", "/users/" + strings.ToUpper(unknownID), ``, nil, 400, []string{"not a user id"}},
		{"unknown user", "GET", "/users/" + unknownID, ``, nil, 404, []string{"no user " + unknownID}},
		{"query on GET", "GET", "/users/" + taken.ID + "?full=1", ``, nil, 400, []string{`unknown query parameter "full"`}},
		{"wrong method on a user", "PATCH", "/users/" + taken.ID, `{"name":"x"}`, nil, 405, []string{"takes GET, DELETE"}},
		{"delete bad id", "DELETE", "/users/x", ``, nil, 400, []string{"not a user id"}},
		{"delete unknown", "DELETE", "/users/" + unknownID, ``, nil, 404, []string{"no user " + unknownID}},
		{"delete with query", "DELETE", "/users/" + taken.ID + "?force=1", ``, nil, 400, []string{`unknown query parameter "force"`}},
		{"mail unknown query", "GET", "/mail?from=x", ``, nil, 400, []string{`unknown query parameter "from"`}},
		{"mail bad to", "GET", "/mail?to=ada", ``, nil, 400, []string{"not a mail address"}},
		{"mail two to", "GET", "/mail?to=a@example.com&to=b@example.com", ``, nil, 400, []string{"at most one"}},
		{"POST /mail", "POST", "/mail", `{}`, nil, 405, []string{"takes GET"}},
		{"coupon unknown", "GET", "/coupons/" + unknownID, ``, nil, 404, []string{"no coupon"}},
		{"coupon query", "GET", "/coupons/" + taken.ID + "?all=1", ``, nil, 400, []string{`unknown query parameter "all"`}},
		{"DELETE coupon", "DELETE", "/coupons/" + taken.ID, ``, nil, 405, []string{"takes GET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, b := do(t, tc.method, s.base+tc.path, tc.body, tc.headers...)
			if status != tc.status {
				t.Errorf("status %d, want %d; body %s", status, tc.status, b)
			}
			var body map[string]string
			if err := json.Unmarshal(b, &body); err != nil || body["error"] == "" || h.Get("Content-Type") != "application/json" {
				t.Fatalf("body %s (%s) is not a JSON error (%v)", b, h.Get("Content-Type"), err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(body["error"], w) {
					t.Errorf("error %q does not mention %q", body["error"], w)
				}
			}
		})
	}

	// Nothing was stored: the taken address still belongs to its user, and
	// the addresses of the rejected requests are free.
	if status, _, b := do(t, "GET", s.base+taken.Links.Self, ""); status != http.StatusOK || !strings.Contains(string(b), `"name": "Ada"`) {
		t.Errorf("the existing user changed: %d %s", status, b)
	}
	// Nothing was published: the next events are those of the good requests.
	good := register(t, s, "Brian", "b@example.com", http.StatusAccepted)
	if status, _, b := do(t, "DELETE", s.base+taken.Links.Self, ""); status != http.StatusNoContent {
		t.Fatalf("DELETE %s: %d %s", taken.Links.Self, status, b)
	}
	registered.WaitCorrelation(t, good.ID)
	deleted.Wait(t, func(e troupe.Event[users.DeletedV1]) bool { return e.Data.UserID == taken.ID })
	var ids []string
	for _, e := range registered.Events() {
		ids = append(ids, e.Data.UserID)
	}
	if len(ids) != 2 || ids[0] != taken.ID || ids[1] != good.ID {
		t.Errorf("user_registered events for %v, want only %s and %s: a bad request published", ids, taken.ID, good.ID)
	}
	if n := len(deleted.Events()); n != 1 {
		t.Errorf("%d user_deleted events, want 1: a bad DELETE published", n)
	}
}
