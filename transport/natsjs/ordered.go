package natsjs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// gate makes one consumer of an ordered subscription active at a time,
// across processes, through a lock in the namespace's key-value bucket
// TROUPE_<ns>_LOCKS: the key "<service>.<name>" holds the owner's id and
// when its claim expires. The owner renews the claim a few times per lease;
// a standby takes the key once the claim has expired (a compare-and-set on
// the key's revision, so only one wins) or the owner deleted it on Stop.
// Until then its pullers ask for nothing.
//
// A claim lasts two leases, so by the time a standby takes over from a dead
// owner, the owner's unsettled messages are due for redelivery and come
// before newer ones. Expiry compares the processes' clocks: keep them in
// sync (NTP) when the standby runs on another machine.
type gate struct {
	c    *consumer
	kv   jetstream.KeyValue
	key  string
	id   string
	ttl  time.Duration
	held atomic.Bool
	rev  uint64 // revision of our claim, used only by the run goroutine
	// sortUntil is when the sort window after taking the turn ends (Unix
	// nanoseconds); see consumer.dispatch.
	sortUntil atomic.Int64
	stop      chan struct{}
	done      chan struct{}
}

func (t *Transport) openGate(ctx context.Context, c *consumer) (*gate, error) {
	kv, err := t.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: locksBucket(t.n.ns), Description: "troupe: which consumer of each ordered subscription is active",
		History: 1, Storage: jetstream.FileStorage, Replicas: t.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: ordered subscription %s: lock bucket: %w", c.sub.String(), err)
	}
	g := &gate{
		c: c, kv: kv, key: c.sub.Service + "." + c.sub.Name, id: nats.NewInbox()[len(nats.InboxPrefix):],
		ttl: 2 * c.sub.Lease, stop: make(chan struct{}), done: make(chan struct{}),
	}
	c.gate = g // before try: a turn taken there lets messages flow to dispatch
	g.try(ctx)
	go g.run()
	return g, nil
}

// locksBucket is the key-value bucket of a namespace's ordered
// subscriptions (its stream is KV_<bucket>).
func locksBucket(ns string) string { return "TROUPE_" + ns + "_LOCKS" }

// open reports whether this consumer may pull.
func (g *gate) open() bool { return g == nil || g.held.Load() }

func (g *gate) run() {
	defer close(g.done)
	tick := time.NewTicker(max(g.c.sub.Lease/3, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		if g.c.t.cnc.IsClosed() {
			g.held.Store(false)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.c.sub.Lease)
		g.try(ctx)
		cancel()
	}
}

// try renews the claim, or takes it when it is free or expired.
func (g *gate) try(ctx context.Context) {
	claim := []byte(g.id + " " + strconv.FormatInt(time.Now().Add(g.ttl).UnixNano(), 10))
	if g.held.Load() {
		rev, err := g.kv.Update(ctx, g.key, claim, g.rev)
		if err == nil {
			g.rev = rev
			return
		}
		g.held.Store(false)
		g.c.t.log.Warn("troupe: ordered subscription lost its turn to another consumer; standing by",
			"subscription", g.c.sub.String(), "err", err)
		return
	}
	var rev uint64
	var err error
	e, gerr := g.kv.Get(ctx, g.key)
	switch {
	case errors.Is(gerr, jetstream.ErrKeyNotFound):
		rev, err = g.kv.Create(ctx, g.key, claim)
	case gerr != nil:
		err = gerr
	case expired(e.Value()):
		rev, err = g.kv.Update(ctx, g.key, claim, e.Revision())
	default:
		return // another consumer is active
	}
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) && !strings.Contains(err.Error(), "wrong last sequence") {
			g.c.t.log.Debug("troupe: ordered subscription could not take its turn", "subscription", g.c.sub.String(), "err", err)
		}
		return
	}
	g.rev = rev
	g.sortUntil.Store(time.Now().Add(sortWindow).UnixNano())
	g.held.Store(true)
	g.c.t.log.Debug("troupe: ordered subscription active here", "subscription", g.c.sub.String())
	g.c.mu.Lock()
	for _, p := range g.c.pullers {
		p.ask()
	}
	g.c.mu.Unlock()
}

// expired reports whether a claim's expiry has passed.
func expired(claim []byte) bool {
	_, at, ok := strings.Cut(string(claim), " ")
	if !ok {
		return true
	}
	ns, err := strconv.ParseInt(at, 10, 64)
	return err != nil || time.Now().UnixNano() > ns
}

// close stops renewing and gives the turn up at once, so a standby takes
// over without waiting for the claim to expire.
func (g *gate) close() {
	close(g.stop)
	<-g.done
	if !g.held.Swap(false) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.kv.Delete(ctx, g.key, jetstream.LastRevision(g.rev))
}

// dispatch feeds an ordered subscription's messages, in arrival order, to a
// sequencer keyed by their ordering key. For a moment after this consumer
// becomes the active one it holds what arrives and sorts it by stream
// sequence first: the server redelivers a dead consumer's messages in the
// order their leases ran out, which is not always the order they were
// stored.
func (c *consumer) dispatch() {
	seq := transport.NewSequencer(c.sub.Concurrency)
	submit := func(m *nats.Msg) {
		seq.Submit(m.Header.Get("ce-"+transport.PartitionKey), func() { c.process(m) })
	}
	var (
		held []*nats.Msg
		fire <-chan time.Time // the sort window's end, while messages are held
	)
	release := func() {
		slices.SortStableFunc(held, func(a, b *nats.Msg) int { return cmp.Compare(streamSeq(a), streamSeq(b)) })
		for _, m := range held {
			submit(m)
		}
		held, fire = nil, nil
	}
	for {
		select {
		case m, ok := <-c.work:
			if !ok {
				release()
				seq.Wait()
				return
			}
			until := time.Unix(0, c.gate.sortUntil.Load())
			if wait := time.Until(until); wait > 0 && strings.HasPrefix(m.Subject, c.t.n.eventsPrefix()) {
				held = append(held, m)
				if fire == nil {
					fire = time.After(wait)
				}
				continue
			}
			release()
			submit(m)
		case <-fire:
			release()
		}
	}
}

// streamSeq is a message's sequence in its stream, or 0.
func streamSeq(m *nats.Msg) uint64 {
	meta, err := m.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}

// sortWindow is how long a newly active consumer of an ordered
// subscription sorts what arrives before handing it on.
const sortWindow = 250 * time.Millisecond
