package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// warnings collects the transport's warnings.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		w.mu.Lock()
		w.msgs = append(w.msgs, b.String())
		w.mu.Unlock()
	}
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

// TestConcurrentFirstRetries: many deliveries failing at once all go
// through the retry path, whose queue the first of them declares, without
// the broker refusing any.
func TestConcurrentFirstRetries(t *testing.T) {
	const n = 16
	w := &warnings{}
	tr := open(t, rabbitmq.Config{Logger: slog.New(w)})
	sub := testSub()
	sub.Concurrency = n
	sub.Retry.MaxAttempts = 2
	if err := tr.Declare(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	attempts := map[string][]int{}
	done := make(chan struct{})
	handled := 0
	_, err := tr.Consume(t.Context(), sub, func(ctx context.Context, d *transport.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[d.ID] = append(attempts[d.ID], d.Attempt)
		if d.Attempt == 1 {
			return errors.New("first attempt fails")
		}
		if handled++; handled == n {
			close(done)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*transport.Message
	for i := range n {
		m := testMessage("orders")
		m.ID = fmt.Sprint(m.ID, "-", i)
		msgs = append(msgs, m)
	}
	if err := tr.Publish(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d second attempts", handled, n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if strings.Contains(m, "could not schedule a retry") {
			t.Errorf("warning: %s", m)
		}
	}
}
