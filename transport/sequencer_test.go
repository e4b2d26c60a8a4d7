package transport

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Functions of one key run in order and never overlap; different keys run
// concurrently, never more than n at once.
func TestSequencerOrdersPerKeyAndRunsKeysInParallel(t *testing.T) {
	const n, keys, per = 4, 10, 50
	s := NewSequencer(n)
	var (
		mu       sync.Mutex
		got      = map[string][]int{}
		running  = map[string]bool{}
		active   atomic.Int32
		maxAct   atomic.Int32
		overlaps atomic.Int32
	)
	for i := range per {
		for k := range keys {
			key := fmt.Sprint("k", k)
			s.Submit(key, func() {
				mu.Lock()
				if running[key] {
					overlaps.Add(1)
				}
				running[key] = true
				mu.Unlock()
				a := active.Add(1)
				for m := maxAct.Load(); a > m && !maxAct.CompareAndSwap(m, a); m = maxAct.Load() {
				}
				time.Sleep(50 * time.Microsecond) // give other keys a chance to overlap
				active.Add(-1)
				mu.Lock()
				running[key] = false
				got[key] = append(got[key], i)
				mu.Unlock()
			})
		}
	}
	s.Wait()
	if o := overlaps.Load(); o != 0 {
		t.Errorf("%d times two functions of one key overlapped", o)
	}
	if m := maxAct.Load(); m > n || m < 2 {
		t.Errorf("at most %d ran at once, want between 2 and %d", m, n)
	}
	for k, seq := range got {
		if len(seq) != per {
			t.Errorf("key %s ran %d functions, want %d", k, len(seq), per)
		}
		for i, v := range seq {
			if v != i {
				t.Fatalf("key %s ran out of order: %v", k, seq)
			}
		}
	}
}

// Unkeyed functions do not wait for each other.
func TestSequencerUnkeyedRunInParallel(t *testing.T) {
	s := NewSequencer(2)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	for range 2 {
		s.Submit("", func() { started <- struct{}{}; <-release })
	}
	for range 2 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("two unkeyed functions did not run at once")
		}
	}
	close(release)
	s.Wait()
}
