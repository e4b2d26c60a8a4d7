package journal

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// The start hint comes only from UUIDv7 ids, a margin before their time,
// and never from the future.
func TestSinceHint(t *testing.T) {
	now := time.Now()
	v7, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	got := sinceHint(v7.String(), now)
	if d := now.Sub(got); d < hintMargin-time.Second || d > hintMargin+time.Second {
		t.Errorf("hint for a fresh UUIDv7 is %s before now, want about %s", d, hintMargin)
	}
	for _, id := range []string{"order-1042", uuid.NewString(), ""} {
		if h := sinceHint(id, now); !h.IsZero() {
			t.Errorf("hint for %q: %v, want none", id, h)
		}
	}
	if h := sinceHint(v7.String(), now.Add(-time.Hour)); !h.IsZero() {
		t.Errorf("hint for an id an hour ahead of the clock: %v, want none", h)
	}
}
