package troupe

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The attempt context must behave as context.WithTimeout followed by
// context.WithValue would, whether or not anyone asked for Done.
func TestAttemptCtx(t *testing.T) {
	type key struct{}
	base := context.WithValue(context.Background(), key{}, "parent's")

	t.Run("deadline, watched", func(t *testing.T) {
		c := newAttemptCtx(base, 20*time.Millisecond)
		defer c.end()
		if c.Err() != nil {
			t.Fatalf("Err before the deadline: %v", c.Err())
		}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Done did not close at the deadline")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(c), context.DeadlineExceeded) {
			t.Fatalf("Err %v, Cause %v", c.Err(), context.Cause(c))
		}
	})

	t.Run("deadline, unwatched", func(t *testing.T) {
		c := newAttemptCtx(base, time.Millisecond)
		defer c.end()
		deadline, ok := c.Deadline()
		if !ok {
			t.Fatal("no deadline")
		}
		// Nothing signals the deadline here (that is the point): poll Err.
		giveUp := time.Now().Add(10 * time.Second)
		for c.Err() == nil && time.Now().Before(giveUp) {
			time.Sleep(100 * time.Microsecond)
		}
		if now := time.Now(); !errors.Is(c.Err(), context.DeadlineExceeded) || now.Before(deadline) {
			t.Fatalf("Err %v at %v, deadline %v", c.Err(), now, deadline)
		}
		select {
		case <-c.Done(): // asked for late: already closed
		default:
			t.Fatal("Done asked for after the deadline is open")
		}
	})

	t.Run("parent cancelled", func(t *testing.T) {
		for _, watched := range []bool{true, false} {
			parent, cancel := context.WithCancel(base)
			c := newAttemptCtx(parent, time.Hour)
			var done <-chan struct{}
			if watched {
				done = c.Done()
			}
			cancel()
			if watched {
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("Done did not close with the parent")
				}
			}
			if !errors.Is(c.Err(), context.Canceled) {
				t.Fatalf("watched=%v: Err %v", watched, c.Err())
			}
			c.end()
		}
	})

	t.Run("parent's earlier deadline", func(t *testing.T) {
		parent, cancel := context.WithTimeout(base, time.Minute)
		defer cancel()
		c := newAttemptCtx(parent, time.Hour)
		defer c.end()
		pd, _ := parent.Deadline()
		if d, _ := c.Deadline(); !d.Equal(pd) {
			t.Fatalf("deadline %v, parent's %v", d, pd)
		}
	})

	t.Run("end", func(t *testing.T) {
		c := newAttemptCtx(base, time.Hour)
		child, cancelChild := context.WithCancel(c)
		defer cancelChild()
		c.end()
		select {
		case <-child.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a context derived in the handler did not end with the attempt")
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err %v after end", c.Err())
		}
	})

	t.Run("values", func(t *testing.T) {
		c := newAttemptCtx(base, time.Hour)
		defer c.end()
		c.scope.salt = "mine"
		if s := scopeOf(c); s == nil || s.salt != "mine" {
			t.Fatalf("scope %+v", s)
		}
		if v := c.Value(key{}); v != "parent's" {
			t.Fatalf("parent's value %v", v)
		}
		if s := scopeOf(context.WithValue(c, key{}, 1)); s == nil || s.salt != "mine" {
			t.Fatalf("scope through a child: %+v", s)
		}
	})
}

func BenchmarkAttemptCtx(b *testing.B) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("troupe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := newAttemptCtx(parent, time.Minute)
			_ = c.Err()
			c.end()
		}
	})
	b.Run("std", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, cancel := context.WithTimeout(parent, time.Minute)
			c = context.WithValue(c, scopeKey{}, &scope{})
			_ = c.Err()
			cancel()
		}
	})
}
