package natsjs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// Each topic's events live in a stream of their own. The server stores a
// stream's messages through one loop under one lock, so with every topic in
// one stream, whatever held that stream up (growing a block's buffer, a
// garbage collection in the embedded server's process) held up every step
// of every flow in flight; with a stream per topic it holds up one step.
// (Throughput is the same either way on two cores: bench/NOTES.md.)
//
// A topic's stream is found before it is made: whatever stream already
// captures the topic's subjects is used as it is. That keeps the events of
// a namespace made before streams were per topic (one stream
// TROUPE_<ns>_EVENTS for all), and lets an operator provide a stream of
// their own (other limits, placement, mirrors) for a topic.

// topicStreams remembers the stream of each topic and of each subscription
// this transport has used.
type topicStreams struct {
	mu        sync.Mutex
	topics    map[string]*streamLookup // topic -> its stream
	consumers map[string][]string      // consumer name -> event streams it is on
	scannedAt time.Time                // when consumers last took in the server's answer (see consumerStreams)
	scan      sync.Mutex               // held while asking the server, so only one asks
}

// streamLookup is one topic's stream, found or made once; concurrent
// callers wait for the first.
type streamLookup struct {
	done chan struct{}
	s    jetstream.Stream
	err  error
}

// topicStream returns the stream that stores topic's events, creating it
// if none captures them. An error is not remembered: the next call tries
// again.
func (t *Transport) topicStream(ctx context.Context, topic string) (jetstream.Stream, error) {
	ts := &t.streams
	ts.mu.Lock()
	if l, ok := ts.topics[topic]; ok {
		ts.mu.Unlock()
		select {
		case <-l.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("natsjs: stream of topic %s: %w", topic, ctx.Err())
		}
		if l.err == nil {
			return l.s, nil
		}
		return t.topicStream(ctx, topic) // the failed lookup is gone; try again
	}
	l := &streamLookup{done: make(chan struct{})}
	if ts.topics == nil {
		ts.topics = make(map[string]*streamLookup)
	}
	ts.topics[topic] = l
	ts.mu.Unlock()

	l.s, l.err = t.findOrMakeStreamWaiting(ctx, topic)
	if l.err != nil {
		ts.mu.Lock()
		delete(ts.topics, topic)
		ts.mu.Unlock()
	}
	close(l.done)
	return l.s, l.err
}

// findOrMakeStreamWaiting is findOrMakeStream that waits out a lost
// connection as a publish does: until ctx ends, or publishStallWait when
// ctx has no deadline (nats.go would give up after 5 seconds).
func (t *Transport) findOrMakeStreamWaiting(ctx context.Context, topic string) (jetstream.Stream, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, publishStallWait)
		defer cancel()
	}
	for {
		s, err := t.findOrMakeStream(ctx, topic)
		if err == nil || ctx.Err() != nil || t.closed.Load() || !t.nc.IsReconnecting() {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (t *Transport) findOrMakeStream(ctx context.Context, topic string) (jetstream.Stream, error) {
	filter := t.n.topicFilter(topic)
	own := topicStreamName(t.n.ns, topic)
	var found []string
	names := t.js.StreamNames(ctx, jetstream.WithStreamListSubject(filter))
	for name := range names.Name() {
		found = append(found, name)
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("natsjs: find the stream of topic %s: %w%s", topic, err, jsHint(err))
	}
	switch {
	case len(found) > 1:
		slices.Sort(found)
		return nil, fmt.Errorf("natsjs: topic %s: streams %v each store some of its subjects (%s); one stream must hold them all", topic, found, filter)
	case len(found) == 1 && found[0] != own:
		// The namespace's one stream of earlier versions, or an operator's.
		s, err := t.js.Stream(ctx, found[0])
		if err != nil {
			return nil, fmt.Errorf("natsjs: stream %s of topic %s: %w", found[0], topic, err)
		}
		return s, nil
	}
	cfg := jetstream.StreamConfig{
		Name:        own,
		Description: "troupe events of topic " + topic + ", namespace " + t.cfg.Namespace,
		Subjects:    []string{filter},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      t.cfg.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    t.cfg.Replicas,
		Duplicates:  t.cfg.DedupWindow,
	}
	if len(found) == 1 {
		// Ours already: bring its limits up to this transport's Config.
		s, err := t.js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("natsjs: update stream %s of topic %s: %w", own, topic, err)
		}
		return s, nil
	}
	s, err := t.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Made a moment ago by another process with other limits, or
		// the name is taken by a stream that stores something else.
		if s, err = t.js.Stream(ctx, own); err == nil {
			if subj := s.CachedInfo().Config.Subjects; !slices.Equal(subj, cfg.Subjects) {
				return nil, fmt.Errorf("natsjs: topic %s: stream %s exists and stores %v, not %s; it belongs to something else", topic, own, subj, filter)
			}
			s, err = t.js.CreateOrUpdateStream(ctx, cfg)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsjs: create stream %s of topic %s: %w%s", own, topic, err, jsHint(err))
	}
	return s, nil
}

// ensureTopic makes sure the topic of w (the wire type of a message about
// to be published) has its stream, asking only until one publish found it.
func (t *Transport) ensureTopic(ctx context.Context, wireType string, w *wireType) error {
	if w.ready.Load() {
		return nil
	}
	if _, err := t.topicStream(ctx, w.topic); err != nil {
		if t.closed.Load() || errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("natsjs: publish %s: %w: %v", wireType, transport.ErrClosed, err)
		}
		return fmt.Errorf("natsjs: publish %s: %w", wireType, err)
	}
	w.ready.Store(true)
	return nil
}

// subscriptionStream returns the name of the stream holding the
// subscription's consumer, or "" if it has none. A subscription this
// transport declared is known; another is looked up (see consumerStreams).
func (t *Transport) subscriptionStream(ctx context.Context, ref transport.SubscriptionRef) (string, error) {
	on, err := t.consumerStreams(ctx, consumerName(ref))
	if err != nil || len(on) == 0 {
		return "", err
	}
	return on[0], nil
}

// rememberSubscription records the stream of a declared subscription.
func (t *Transport) rememberSubscription(name, stream string) {
	ts := &t.streams
	ts.mu.Lock()
	if ts.consumers == nil {
		ts.consumers = make(map[string][]string)
	}
	if !slices.Contains(ts.consumers[name], stream) {
		ts.consumers[name] = append(ts.consumers[name], stream)
	}
	ts.mu.Unlock()
}

// consumerStreams returns the event streams that have a consumer named
// name, sorted. What this transport declared is known; for any other name
// it asks the server for the consumers of every event stream of the
// namespace (a request per stream), at most once per rescanAfter, so a
// consumer another process made since the last scan may be missed for
// that long.
func (t *Transport) consumerStreams(ctx context.Context, name string) ([]string, error) {
	ts := &t.streams
	ts.mu.Lock()
	on := slices.Clone(ts.consumers[name])
	ts.mu.Unlock()
	if len(on) > 0 {
		slices.Sort(on)
		return on, nil
	}
	ts.scan.Lock() // one scan at a time
	defer ts.scan.Unlock()
	ts.mu.Lock()
	on = slices.Clone(ts.consumers[name])
	fresh := !ts.scannedAt.IsZero() && time.Since(ts.scannedAt) < rescanAfter
	ts.mu.Unlock()
	if len(on) > 0 || fresh {
		slices.Sort(on)
		return on, nil
	}
	found := make(map[string][]string)
	var streams []string
	names := t.js.StreamNames(ctx, jetstream.WithStreamListSubject(t.n.eventsSubjects()))
	for s := range names.Name() {
		streams = append(streams, s)
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("natsjs: list the event streams: %w", err)
	}
	for _, sn := range streams {
		s, err := t.js.Stream(ctx, sn)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // deleted since it was listed
		} else if err != nil {
			return nil, fmt.Errorf("natsjs: list the consumers of stream %s: %w", sn, err)
		}
		consumers := s.ConsumerNames(ctx)
		for c := range consumers.Name() {
			found[c] = append(found[c], sn)
		}
		if err := consumers.Err(); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("natsjs: list the consumers of stream %s: %w", sn, err)
		}
	}
	ts.mu.Lock()
	if ts.consumers == nil {
		ts.consumers = make(map[string][]string)
	}
	for c, ss := range found {
		for _, s := range ss {
			if !slices.Contains(ts.consumers[c], s) {
				ts.consumers[c] = append(ts.consumers[c], s)
			}
		}
	}
	ts.scannedAt = time.Now()
	on = slices.Clone(ts.consumers[name])
	ts.mu.Unlock()
	slices.Sort(on)
	return on, nil
}

// jsHint adds a likely cause to an error of the JetStream API.
func jsHint(err error) string {
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return " (is JetStream enabled on the server, with -js?)"
	}
	return ""
}

// topicStreamName is the stream troupe makes for a topic:
// TROUPE_<ns>_EVENTS@<topic>, shortened with a hash of the topic where it
// would pass the server's 255 characters. Names never hold '@', so the
// name of one namespace's topic stream cannot be another namespace's
// stream of any kind.
func topicStreamName(ns, topic string) string {
	name := "TROUPE_" + ns + "_EVENTS@" + topic
	if len(name) <= maxStreamName {
		return name
	}
	sum := sha256.Sum256([]byte(topic))
	tag := "-" + hex.EncodeToString(sum[:6])
	return name[:maxStreamName-len(tag)] + tag
}

// rescanAfter is how old the last scan of the namespace's consumers may be
// before a name it did not find is looked for again.
var rescanAfter = 5 * time.Second

// maxStreamName is nats-server's longest stream name.
const maxStreamName = 255

// TopicStream returns the stream that stores topic's events, every version
// of it, creating it as a publish would if no stream does; read a topic's
// history from it, for instance to rebuild a read model with an ordered
// consumer filtered to [Transport.TopicSubjects]. Troupe names the streams
// it creates TROUPE_<namespace>_EVENTS@<topic>, but a topic may live in
// another stream: the namespace's single stream of earlier versions
// (TROUPE_<namespace>_EVENTS), or one an operator made. It fails for an
// invalid topic name, with [transport.ErrClosed] after Close, and with the
// server's error when it cannot find or create the stream.
func (t *Transport) TopicStream(ctx context.Context, topic string) (jetstream.Stream, error) {
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	if !transport.ValidName(topic) {
		return nil, fmt.Errorf("natsjs: topic name %q: use a letter followed by letters, digits, '_' or '-'", topic)
	}
	return t.topicStream(ctx, topic)
}

// TopicSubjects returns the subject filter that matches every version of
// topic's events: troupe.<namespace>.e.<topic>.*; version N is published
// to troupe.<namespace>.e.<topic>.vN.
func (t *Transport) TopicSubjects(topic string) string { return t.n.topicFilter(topic) }

var _ transport.TopicDeclarer = (*Transport)(nil)

// DeclareTopics implements [transport.TopicDeclarer]: each topic's stream
// is found or made (see [Transport.TopicStream]). It asks the server once
// per topic this transport has not used yet.
func (t *Transport) DeclareTopics(ctx context.Context, topics ...string) error {
	for _, topic := range topics {
		if _, err := t.TopicStream(ctx, topic); err != nil {
			return err
		}
	}
	return nil
}
