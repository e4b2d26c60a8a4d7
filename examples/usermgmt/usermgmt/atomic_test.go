package usermgmt_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/usermgmt/usermgmt"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
	"github.com/troupe-go/troupe/outbox"
	"github.com/troupe-go/troupe/troupetest"
)

// TestRowAndEventCommitTogether breaks the user service's outbox (its table
// is dropped) and checks that a registration and a deletion that cannot
// write their event change nothing either: 503, no row written or removed.
// With the table back, the same requests succeed and are announced.
func TestRowAndEventCommitTogether(t *testing.T) {
	var registered *troupetest.Observer[users.RegisteredV1]
	var deleted *troupetest.Observer[users.DeletedV1]
	s := startSystem(t, &usermgmt.Options{}, func(app *troupe.App) {
		registered = troupetest.Observe(t, app, users.Registered)
		deleted = troupetest.Observe(t, app, users.Deleted)
	})
	existing := register(t, s, "Ada", "ada@example.com", http.StatusAccepted)
	registered.WaitCorrelation(t, existing.ID)

	db, err := outbox.OpenSQLite(filepath.Join(s.dir, "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DROP TABLE users_outbox"); err != nil {
		t.Fatal(err)
	}

	status, _, b := do(t, "POST", s.base+"/users", `{"name":"Grace","email":"grace@example.com"}`)
	var e struct{ Error string }
	if status != http.StatusServiceUnavailable || json.Unmarshal(b, &e) != nil || e.Error == "" {
		t.Errorf("POST with a broken outbox: %d %s, want 503 and a JSON error", status, b)
	}
	status, _, b = do(t, "DELETE", s.base+existing.Links.Self, "")
	if status != http.StatusServiceUnavailable {
		t.Errorf("DELETE with a broken outbox: %d %s, want 503", status, b)
	}
	if n := countRows(t, db, "users"); n != 1 {
		t.Errorf("%d users rows, want only Ada's: a row committed without its event", n)
	}
	if status, _, b := do(t, "GET", s.base+existing.Links.Self, ""); status != http.StatusOK {
		t.Errorf("GET %s after the failed DELETE: %d %s, want the user still there", existing.Links.Self, status, b)
	}

	// outbox.New creates the missing table again.
	if _, err := outbox.New(db, outbox.Options{Prefix: "users"}); err != nil {
		t.Fatal(err)
	}
	grace := register(t, s, "Grace", "grace@example.com", http.StatusAccepted)
	if status, _, b := do(t, "DELETE", s.base+existing.Links.Self, ""); status != http.StatusNoContent {
		t.Fatalf("DELETE with the outbox back: %d %s", status, b)
	}
	registered.WaitCorrelation(t, grace.ID)
	deleted.Wait(t, func(e troupe.Event[users.DeletedV1]) bool { return e.Data.UserID == existing.ID })
	if n := len(registered.Events()); n != 2 {
		t.Errorf("%d user_registered events, want 2 (Ada, then Grace once)", n)
	}
	if n := len(deleted.Events()); n != 1 {
		t.Errorf("%d user_deleted events, want 1", n)
	}
}
