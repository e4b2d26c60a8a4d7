package natsjs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-go/troupe/transport"
)

// consumer runs the handlers of one subscription in this process.
//
// It speaks the JetStream pull protocol itself rather than through the
// client's iterators, because it must count a message as taken until it is
// settled, not merely received. It asks the server for as many messages as
// fit its budget (Concurrency+Prefetch), every message it holds, queued or
// being handled, has its lease renewed, and nothing waits in a buffer it
// cannot see. A slow handler therefore never lets the messages queued behind
// it expire and go to another consumer while this one still means to handle
// them, and a fast one is never starved by a round trip per batch.
type consumer struct {
	t       *Transport
	sub     transport.Subscription
	pipe    *transport.Pipeline[*nats.Msg]
	work    chan *nats.Msg
	pullers []*puller

	ctx    context.Context // handlers' base context, cancelled on a hard stop
	cancel context.CancelFunc

	mu        sync.Mutex
	stopping  atomic.Bool           // read per message by the workers, without c.mu
	held      map[*nats.Msg]*puller // arrived, not yet settled
	unstarted []*nats.Msg           // arrived once stopping, to hand back

	gate    *gate         // ordered subscriptions: whether this consumer may pull
	stopped chan struct{} // closed when Stop begins

	workers sync.WaitGroup
	done    chan struct{}
	stopErr error
	once    sync.Once
}

// Pull requests wait this long on the server for messages, and the server
// sends a heartbeat while one waits idle, so a request lost with a
// connection is noticed and replaced.
const (
	pullExpires   = 30 * time.Second
	pullHeartbeat = 5 * time.Second
)

// handBackInfoTimeout bounds the consumer info request of handBack.
const handBackInfoTimeout = 2 * time.Second

// replayLimit is the replay consumer's budget; replays are rare.
const replayLimit = 16

// puller asks one JetStream consumer (the subscription's events, or its
// replays) for messages within its own budget, so a waiting request on one
// never starves the other.
//
// The server sends a request's messages under their own subjects and
// spreads them over the open requests as it likes (it rotates a partly
// filled request to the back of its queue), so the puller counts only
// totals: each message lowers asked by one, and a request's ending status
// names the request and says how many it will not send.
type puller struct {
	c        *consumer
	api      string // subject of pull requests
	info     string // subject of consumer info requests
	inbox    string // requests reply to inbox.<n>
	sub      *nats.Subscription
	limit    int            // most messages held at once
	seq      uint64         // last request number
	open     map[string]int // open requests: reply subject -> messages asked
	asked    int            // messages asked for in open requests, not yet arrived
	held     int            // arrived, not yet settled
	seen     time.Time      // last message or heartbeat
	pauseTil time.Time      // no new requests before this (after an error status)
}

// Consume implements [transport.Transport].
func (t *Transport) Consume(ctx context.Context, sub transport.Subscription, h transport.Handler) (transport.Consumer, error) {
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	sub = sub.WithDefaults()
	_, _, stream, err := t.declare(ctx, sub)
	if err != nil {
		return nil, err
	}
	c := &consumer{t: t, sub: sub, held: make(map[*nats.Msg]*puller), done: make(chan struct{}), stopped: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.pipe = transport.NewPipeline(sub, h, transport.Settler[*nats.Msg](c), transport.PipelineConfig{
		Context: c.ctx, Stopping: c.stopped, Logger: t.log,
	})
	name := consumerName(sub.SubscriptionRef)
	specs := []struct {
		stream string
		limit  int
	}{
		{stream, sub.Concurrency + sub.Prefetch},
		{t.n.replayStream(), replayLimit},
	}
	total := 0
	for _, s := range specs {
		c.pullers = append(c.pullers, &puller{
			c: c, api: "$JS.API.CONSUMER.MSG.NEXT." + s.stream + "." + name,
			info:  "$JS.API.CONSUMER.INFO." + s.stream + "." + name,
			inbox: t.cnc.NewInbox(), limit: s.limit, seen: time.Now(),
		})
		total += s.limit
	}
	// Room for every budget, so the subscription callback never blocks.
	c.work = make(chan *nats.Msg, total)
	for _, p := range c.pullers {
		var err error
		p.sub, err = t.cnc.Subscribe(p.inbox+".*", p.receive)
		if err != nil {
			for _, q := range c.pullers {
				if q.sub != nil {
					_ = q.sub.Unsubscribe()
				}
			}
			return nil, fmt.Errorf("natsjs: consume %s: %w", sub.String(), err)
		}
		// A burst larger than the budget (after a lost request was given up)
		// must not make the client drop messages as a slow consumer.
		_ = p.sub.SetPendingLimits(-1, -1)
	}
	if sub.Ordered {
		if _, err := t.openGate(ctx, c); err != nil {
			for _, p := range c.pullers {
				_ = p.sub.Unsubscribe()
			}
			return nil, err
		}
		c.workers.Go(c.dispatch)
	} else {
		c.workers.Go(func() { transport.Serve(sub, c.work, nil, c.process) })
	}
	c.mu.Lock()
	for _, p := range c.pullers {
		p.ask()
	}
	c.mu.Unlock()
	go c.tend()
	t.mu.Lock()
	t.consumers[c] = struct{}{}
	t.mu.Unlock()
	return c, nil
}

// ask sends a pull request for the room left in p's budget once at least
// half of it is free, so that requests are few and worth their round trip
// (the server's cost is per request as well as per message). Handlers are
// never starved by the wait: until then they have the held half to work on,
// and each settled message asks again. c.mu must be held.
func (p *puller) ask() {
	c := p.c
	if c.stopping.Load() || time.Now().Before(p.pauseTil) || !c.gate.open() {
		return
	}
	free := p.limit - p.asked - p.held
	if free < max(1, (p.limit+1)/2) {
		return
	}
	p.seq++
	reply := p.inbox + "." + strconv.FormatUint(p.seq, 10)
	body := fmt.Appendf(nil, `{"batch":%d,"expires":%d,"idle_heartbeat":%d}`, free, pullExpires, pullHeartbeat)
	if err := c.t.cnc.PublishRequest(p.api, reply, body); err != nil {
		p.pauseTil = time.Now().Add(time.Second)
		return
	}
	if p.asked == 0 {
		p.seen = time.Now() // the liveness clock starts with the first open request
	}
	if p.open == nil {
		p.open = make(map[string]int)
	}
	p.open[reply] = free
	p.asked += free
}

// receive is the subscription callback: a message or a status for one of
// p's requests. It never blocks: the work queue has room for every budget.
func (p *puller) receive(m *nats.Msg) {
	c := p.c
	c.mu.Lock()
	p.seen = time.Now()
	if len(m.Data) == 0 && m.Header != nil {
		if status := m.Header.Get("Status"); status != "" {
			p.status(m, status)
			c.mu.Unlock()
			return
		}
	}
	p.asked = max(p.asked-1, 0)
	p.held++
	c.held[m] = p
	c.mu.Unlock()
	c.work <- m
}

// status handles a status message, which names its request by its subject.
// c.mu must be held.
func (p *puller) status(m *nats.Msg, status string) {
	if status == "100" { // idle heartbeat: the request is alive
		return
	}
	// Any other status ends the request: 404 and 408 are the normal ends of
	// a request that got fewer messages than it asked for; 409 reports a
	// limit or a deleted consumer. The server says how many it did not
	// send; without that header, the whole request is taken back (asking a
	// little too much is safe: the work queue has room for bursts).
	if asked, ok := p.open[m.Subject]; ok {
		left := asked
		if n, err := strconv.Atoi(m.Header.Get("Nats-Pending-Messages")); err == nil {
			left = n
		}
		p.asked = max(p.asked-left, 0)
		delete(p.open, m.Subject)
	}
	if len(p.open) == 0 {
		p.asked = 0
	}
	if status != "404" && status != "408" {
		desc := m.Header.Get("Description")
		p.pauseTil = time.Now().Add(time.Second)
		if strings.Contains(strings.ToLower(desc), "deleted") {
			p.c.t.log.Error("troupe: subscription's consumer was deleted on the server; restart the app to declare it again",
				"subscription", p.c.sub.String())
			p.pauseTil = time.Now().Add(time.Minute)
		} else {
			p.c.t.log.Debug("troupe: pull request ended", "subscription", p.c.sub.String(), "status", status, "description", desc)
		}
		return
	}
	p.ask()
}

// settled gives a message's room back to its puller. c.mu must be held.
func (p *puller) settled() {
	p.held--
	p.ask()
}

// waitClosed waits until p's subscription has delivered its last message.
func (p *puller) waitClosed() {
	ch := p.sub.StatusChanged(nats.SubscriptionClosed)
	if !p.sub.IsValid() {
		return
	}
	<-ch
}

// release forgets a settled message.
func (c *consumer) release(m *nats.Msg) {
	c.mu.Lock()
	if p := c.held[m]; p != nil {
		delete(c.held, m)
		p.settled()
	}
	c.mu.Unlock()
}

// tend runs until the consumer stops: a few times per lease it renews the
// lease of every held message, gives up requests that went silent (lost with
// a connection), and asks again after a pause.
func (c *consumer) tend() {
	every := min(c.sub.Lease/3, pullHeartbeat)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var held []*nats.Msg
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		held = held[:0]
		now := time.Now()
		c.mu.Lock()
		for m := range c.held {
			held = append(held, m)
		}
		for _, p := range c.pullers {
			// Open requests send a heartbeat while idle; silence means they
			// were lost with a connection or a server restart.
			if p.asked > 0 && now.Sub(p.seen) > 2*pullHeartbeat+time.Second {
				p.asked = 0
				clear(p.open) // their statuses, if any come, are ignored
			}
			p.ask()
		}
		c.mu.Unlock()
		for _, m := range held {
			_ = m.InProgress()
		}
	}
}

// process handles m, or hands it back when the consumer is stopping, and
// gives its room back.
func (c *consumer) process(m *nats.Msg) {
	if c.stopping.Load() {
		// Not started: handed back by Stop, at once rather than after its
		// lease, once the server has no request of ours left to send it
		// to. Its lease is renewed until then.
		c.mu.Lock()
		c.unstarted = append(c.unstarted, m)
		c.mu.Unlock()
		return
	}
	c.handle(m)
	c.release(m)
}

// handBack returns the messages that arrived but were not started to the
// server, with a negative ack each, so that other consumers get them at
// once. Stop calls it once the pullers' subscriptions are gone: a message
// handed back while one of this consumer's pull requests is still open on
// the server may be sent to that request again, and wait out its lease
// with no one to read it. nats-server 2.9 still does that for the first
// message after the subscription went away; asking it for the consumer's
// info first makes it drop such requests.
func (c *consumer) handBack() {
	c.mu.Lock()
	msgs := c.unstarted
	c.unstarted = nil
	c.mu.Unlock()
	if len(msgs) > 0 && !c.t.cnc.IsClosed() {
		for _, p := range c.pullers {
			_, _ = c.t.cnc.Request(p.info, nil, handBackInfoTimeout)
		}
	}
	for _, m := range msgs {
		_ = m.Nak()
		c.release(m)
	}
}
