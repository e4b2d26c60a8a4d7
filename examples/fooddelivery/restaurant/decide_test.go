package restaurant

import (
	"fmt"
	"math"
	"testing"
)

func TestDecide(t *testing.T) {
	const n = 20_000
	count := make(map[FateKind]int)
	for i := range n {
		id := fmt.Sprintf("order-%d", i)
		f := Decide(id, 0.2, 4)
		if f != Decide(id, 0.2, 4) {
			t.Fatalf("order %s: two decisions differ", id)
		}
		count[f.Kind]++
		switch f.Kind {
		case Flaky:
			if f.Failures < 1 || f.Failures > 2 {
				t.Errorf("flaky order %s fails %d times, want 1 to 2 of 4 attempts: the last attempt but one answers", id, f.Failures)
			}
		case Down:
			if f.Failures != 4 {
				t.Errorf("down order %s fails %d times, want every attempt", id, f.Failures)
			}
		}
		if f.Kind != Confirm && f.Reason == "" {
			t.Errorf("order %s fails (%s) without a reason", id, f.Kind)
		}
		if Decide(id, 0, 4).Kind != Confirm || Decide(id, 1, 4).Kind == Confirm || Decide(id, 1, 2).Kind == Flaky {
			t.Fatalf("order %s: rates 0 and 1, or one attempt, decided wrong", id)
		}
	}
	for kind, share := range map[FateKind]float64{Confirm: 0.8, Reject: 0.1, Flaky: 0.05, Down: 0.05} {
		if got := float64(count[kind]) / n; math.Abs(got-share) > 0.01 {
			t.Errorf("%s: %.3f of orders, want %.2f±0.01", kind, got, share)
		}
	}
}
