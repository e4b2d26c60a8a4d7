package troupe

import (
	"context"
	"errors"
	"runtime"
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

// Contexts a handler derives from its attempt context follow it without a
// goroutine each (through AfterFunc), end with it, and context.AfterFunc
// callbacks run once when it ends unless stopped.
func TestAttemptCtxDerivedContexts(t *testing.T) {
	c := newAttemptCtx(context.Background(), time.Hour)
	before := runtime.NumGoroutine()
	var children []context.Context
	var cancels []context.CancelFunc
	for range 100 {
		child, cancel := context.WithTimeout(c, time.Hour)
		children = append(children, child)
		cancels = append(cancels, cancel)
	}
	if grown := runtime.NumGoroutine() - before; grown >= 50 {
		t.Errorf("100 derived contexts started %d goroutines", grown)
	}
	cancels[0]() // a child cancelled on its own leaves the others
	ran := make(chan struct{}, 2)
	context.AfterFunc(c, func() { ran <- struct{}{} })
	stop := context.AfterFunc(c, func() { ran <- struct{}{} })
	if !stop() {
		t.Error("stop of a waiting AfterFunc reported it had run")
	}
	c.end()
	for i, child := range children {
		select {
		case <-child.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("derived context %d did not end with the attempt", i)
		}
		if i > 0 && !errors.Is(child.Err(), context.Canceled) {
			t.Fatalf("derived context %d: %v", i, child.Err())
		}
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("context.AfterFunc did not run when the attempt ended")
	}
	select {
	case <-ran:
		t.Fatal("a stopped AfterFunc ran")
	case <-time.After(50 * time.Millisecond): // a bounded wait for something that must not happen
	}
	for _, cancel := range cancels {
		cancel()
	}
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
