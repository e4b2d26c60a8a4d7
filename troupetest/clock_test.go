package troupetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-go/troupe/troupetest"
)

func TestClockFiresTimersInOrderOnAdvance(t *testing.T) {
	start := time.Date(2026, 1, 5, 7, 0, 0, 0, time.UTC)
	c := troupetest.NewClock(start)
	late := c.After(2 * time.Hour)
	early := c.After(time.Hour)
	stopped, stop := c.NewTimer(30 * time.Minute)
	now := c.After(0)
	select {
	case at := <-now:
		if !at.Equal(start) {
			t.Errorf("a zero timer fired with %s, want %s", at, start)
		}
	default:
		t.Fatal("a zero timer did not fire at once")
	}
	if n := c.Timers(); n != 3 {
		t.Fatalf("%d timers waiting, want 3", n)
	}
	if !stop() || stop() {
		t.Error("stop reports the first stop only")
	}
	c.Advance(59 * time.Minute)
	select {
	case <-early:
		t.Fatal("a timer fired before its time")
	case <-stopped:
		t.Fatal("a stopped timer fired")
	default:
	}
	c.Advance(2 * time.Hour) // past both
	if at := <-early; !at.Equal(start.Add(time.Hour)) {
		t.Errorf("the early timer fired with %s, want its deadline", at)
	}
	if at := <-late; !at.Equal(start.Add(2 * time.Hour)) {
		t.Errorf("the late timer fired with %s, want its deadline", at)
	}
	if got := c.Now(); !got.Equal(start.Add(179 * time.Minute)) {
		t.Errorf("Now is %s after advancing 179m", got)
	}
	if n := c.Timers(); n != 0 {
		t.Errorf("%d timers left", n)
	}
}

func TestClockWaitTimers(t *testing.T) {
	c := troupetest.NewClock(time.Unix(0, 0))
	done := make(chan time.Time)
	go func() { done <- <-c.After(time.Second) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	c.Set(time.Unix(5, 0))
	if at := <-done; !at.Equal(time.Unix(1, 0)) {
		t.Errorf("fired with %s", at)
	}
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := c.WaitTimers(short, 1); err == nil {
		t.Error("WaitTimers returned nil with no timer and a cancelled context")
	}
}

func TestClockRefusesToGoBack(t *testing.T) {
	c := troupetest.NewClock(time.Unix(100, 0))
	for name, f := range map[string]func(){
		"Advance": func() { c.Advance(-time.Second) },
		"Set":     func() { c.Set(time.Unix(99, 0)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s backwards did not panic", name)
				}
			}()
			f()
		}()
	}
}
