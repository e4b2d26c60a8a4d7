package transport

import (
	"strconv"
	"sync"
)

// PartitionKey is the CloudEvents extension attribute (the partitioning
// extension's "partitionkey") that carries an event's ordering key.
const PartitionKey = "partitionkey"

// Sequencer runs the handlers of an ordered subscription: functions
// submitted under the same key run one at a time, in the order submitted;
// functions under different keys run concurrently, at most n at once.
// Functions submitted with the empty key are not ordered: each runs as if
// under a key of its own.
//
// Transports use it between the goroutine that receives a subscription's
// messages in broker order and the handlers. Submit must be called from
// that one goroutine.
type Sequencer struct {
	slots chan struct{} // one token per running key
	wg    sync.WaitGroup

	mu      sync.Mutex
	pending map[string][]func() // running keys → functions waiting behind
	unkeyed uint64
}

// NewSequencer returns a Sequencer that runs at most n keys at once (n < 1
// means 1).
func NewSequencer(n int) *Sequencer {
	return &Sequencer{slots: make(chan struct{}, max(n, 1)), pending: make(map[string][]func())}
}

// Submit queues fn under key. When key is already running, fn waits behind
// it and Submit returns at once; otherwise Submit blocks until fewer than n
// keys run, which holds back the caller's reading rather than buffering
// without bound.
func (s *Sequencer) Submit(key string, fn func()) {
	s.mu.Lock()
	if key == "" {
		s.unkeyed++
		key = "\x00" + strconv.FormatUint(s.unkeyed, 10) // cannot clash with a real key
	}
	if q, running := s.pending[key]; running {
		s.pending[key] = append(q, fn)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.slots <- struct{}{}
	s.mu.Lock()
	s.pending[key] = nil // running, nothing behind it yet
	s.mu.Unlock()
	s.wg.Add(1)
	go s.run(key, fn)
}

// run runs fn and then whatever queued behind it under key.
func (s *Sequencer) run(key string, fn func()) {
	defer s.wg.Done()
	for {
		fn()
		s.mu.Lock()
		q := s.pending[key]
		if len(q) == 0 {
			delete(s.pending, key)
			s.mu.Unlock()
			<-s.slots
			return
		}
		fn, s.pending[key] = q[0], q[1:]
		s.mu.Unlock()
	}
}

// Wait returns once every submitted function has run.
func (s *Sequencer) Wait() { s.wg.Wait() }

// Serve runs a consumer's handlers: it calls process for each message
// received from work, until work is closed and every call has returned.
// For an unordered subscription it runs sub.Concurrency calls at once; for
// an ordered one it passes the messages, in the order received, through a
// [Sequencer] keyed by key (the message's ordering key, "" for none).
func Serve[M any](sub Subscription, work <-chan M, key func(M) string, process func(M)) {
	n := max(sub.Concurrency, 1)
	if sub.Ordered {
		seq := NewSequencer(n)
		for m := range work {
			seq.Submit(key(m), func() { process(m) })
		}
		seq.Wait()
		return
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for m := range work {
				process(m)
			}
		})
	}
	wg.Wait()
}
