package tally_test

import (
	"encoding/json"
	"testing"

	"github.com/troupe-go/troupe/examples/internal/tally"
)

// The counts sit at the top level of the body they are embedded in, and
// Settled holds only when nothing is left on its way.
func TestCounts(t *testing.T) {
	var body struct {
		tally.Counts
		Orders []string `json:"orders"`
	}
	body.Add("shipped", 3, true)
	body.Add("paid", 1, false)
	body.Add("cancelled", 2, true)
	if body.Settled() {
		t.Error("settled with one order paid")
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"count":6,"by_status":{"cancelled":2,"paid":1,"shipped":3},"terminal":5,"stuck":1,"orders":null}`
	if string(b) != want {
		t.Errorf("%s\nwant %s", b, want)
	}
	var done tally.Counts
	done.Add("shipped", 2, true)
	if !done.Settled() || !(tally.Counts{}).Settled() {
		t.Error("all terminal (or none at all) is settled")
	}
}
