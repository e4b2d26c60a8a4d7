package troupe_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/troupetest"
)

type statusChanged struct {
	OrderID string `json:"order_id"`
	Step    int    `json:"step"`
}

// Steps of one order are handled in the order published, a failing step
// holding up the later steps of its order but not the other orders; the
// handler sees the key in its envelope.
func TestOrderByKeepsEachKeysOrder(t *testing.T) {
	onBrokers(t, testOrderBy)
}

func testOrderBy(t *testing.T, newApp func(troupe.Config) *troupe.App) {
	status := troupe.NewTopic[statusChanged]("status_changed", 1)
	troupe.OrderBy(status, func(s statusChanged) string { return s.OrderID })
	app := newApp(troupe.Config{Name: "ordering"})
	app.Service("orders").Publishes(status)
	const orders, steps = 4, 15
	var (
		mu     sync.Mutex
		seen   = map[string][]int{}
		keys   = map[string]bool{}
		failed = map[string]bool{}
		done   = make(chan struct{})
		total  int
	)
	sub := troupe.Subscribe(app.Service("tracking"), status, "track", func(ctx context.Context, ev troupe.Event[statusChanged]) error {
		mu.Lock()
		defer mu.Unlock()
		keys[ev.OrderingKey] = true
		if ev.Data.Step == 5 && !failed[ev.Data.OrderID] {
			failed[ev.Data.OrderID] = true
			return errors.New("tracking store busy")
		}
		seen[ev.Data.OrderID] = append(seen[ev.Data.OrderID], ev.Data.Step)
		if total++; total == orders*steps {
			close(done)
		}
		return nil
	}, troupe.Backoff(20*time.Millisecond, 20*time.Millisecond), troupe.Concurrency(orders))
	if !sub.Config().Ordered {
		t.Error("Config().Ordered is false for a topic with OrderBy")
	}
	troupetest.Start(t, app)
	var batch []statusChanged
	for step := range steps {
		for o := range orders {
			batch = append(batch, statusChanged{OrderID: fmt.Sprint("order-", o), Step: step})
		}
	}
	if err := troupe.PublishBatch(app.Context(context.Background()), status, batch); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(troupetest.DefaultTimeout):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("handled %d of %d: %v", total, orders*steps, seen)
	}
	mu.Lock()
	defer mu.Unlock()
	for o := range orders {
		id := fmt.Sprint("order-", o)
		for i, step := range seen[id] {
			if step != i {
				t.Fatalf("%s handled out of order: %v", id, seen[id])
			}
		}
		if !keys[id] {
			t.Errorf("no handler saw ordering key %q", id)
		}
	}
}
