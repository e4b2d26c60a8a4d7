// Package natsjs is troupe's NATS JetStream transport, both the default
// embedded broker (an in-process nats-server with its file store in the app's
// data directory) and external servers reached by nats:// URLs.
//
// # Layout on the broker
//
// Each namespace (normally the app's name) owns these streams:
//
//	TROUPE_<ns>_EVENTS@<topic>  subjects troupe.<ns>.e.<topic>.v<N>    the events of one topic, every version
//	TROUPE_<ns>_REPLAY          subjects troupe.<ns>.r.<service>.<sub>  dead letters sent back to one subscription
//	TROUPE_<ns>_DLQ             subjects troupe.<ns>.d.<service>.<sub>  dead letters of each subscription
//
// A topic's stream is made when the app starts (for every topic it
// declares) or when the topic is first used, unless a stream under another
// name already stores its subjects: then that one is used as it is (a
// namespace created before streams were per topic keeps its one stream
// TROUPE_<ns>_EVENTS, and an operator may make a topic's stream, under a
// name of their own, with other limits or placement). A stream under
// troupe's name is troupe's: its limits follow [Config]. With a stream per
// topic, whatever holds up one stream on the server holds up one step of a
// flow, not every step. A stream deleted by hand makes publishes to its
// topic fail until the app restarts and declares it again.
// [Transport.TopicStream] finds a topic's stream, [DeleteNamespace]
// removes all of them.
//
// A subscription is a durable pull consumer named "<service>@<sub>" on its
// topic's stream, plus one of the same name on the replay stream.
// Consumers of one subscription in several processes share those consumers
// (competing consumers); each subscription has its own (fan-out). Retries
// are naks with a delay, so the server redelivers them even after the
// consuming process died. Events are published with their id as
// Nats-Msg-Id, so the server drops a second publish of the same event
// within the dedup window.
//
// Event attributes travel as CloudEvents binary-mode headers (ce-id, ce-type,
// ...), so any NATS client can publish or read troupe events.
//
// # Server versions
//
// Everything here works on nats-server 2.9 and later; the embedded server is
// the version this module depends on.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// Transport is a troupe transport on NATS JetStream. Create it with
// [OpenEmbedded], [Server.Connect], [Connect] or [New].
type Transport struct {
	nc *nats.Conn // publishes, stream management, taps
	// cnc carries the consumers' pull requests, deliveries and acks. It is
	// nc on a connection the caller passed to New; a transport that dials
	// its own opens a second one, so that publishing and consuming do not
	// queue on one connection's lock or one server read loop.
	cnc      *nats.Conn
	js       jetstream.JetStream
	cfg      Config
	n        names
	log      *slog.Logger
	ownsConn bool
	server   *Server // owned embedded server, shut down on Close

	replay, dead jetstream.Stream
	streams      topicStreams

	wire wireCache

	closed atomic.Bool // set under mu, read without it on the publish path
	// gone is closed once the transport has closed its connections, which
	// leaves publishes waiting for a confirm without one: nats.go fails
	// pending confirms when a connection drops, but not when it closes.
	gone     chan struct{}
	goneOnce sync.Once

	mu        sync.Mutex
	consumers map[*consumer]struct{}
	taps      map[*tap]struct{}
}

var _ transport.Transport = (*Transport)(nil)

// Connect dials an external NATS server (url as nats.Connect takes it, e.g.
// "nats://127.0.0.1:4222") and returns a transport that owns its two
// connections (one publishes, one consumes).
// The client reconnects forever after a lost connection; publishes during an
// outage wait for the reconnect until their context ends.
func Connect(ctx context.Context, url string, cfg Config) (*Transport, error) {
	dial := func(name string) (*nats.Conn, error) {
		nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
		if err != nil {
			return nil, fmt.Errorf("natsjs: connect to %s: %w (is the NATS server running, with -js?)", redact(url), err)
		}
		return nc, nil
	}
	return open(ctx, cfg, dial)
}

// open builds a transport on two connections from dial, which it owns: one
// for publishing and one for consuming.
func open(ctx context.Context, cfg Config, dial func(name string) (*nats.Conn, error)) (*Transport, error) {
	nc, err := dial("troupe")
	if err != nil {
		return nil, err
	}
	t, err := New(ctx, nc, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	t.ownsConn = true
	if t.cnc, err = dial("troupe-consume"); err != nil {
		nc.Close()
		return nil, err
	}
	return t, nil
}

// New builds a transport on an existing connection and creates the
// namespace's replay and dead-letter streams if they do not exist (each
// topic's stream is made when the topic is first used). The caller keeps
// ownership of nc.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		return nil, fmt.Errorf("natsjs: %w", err)
	}
	t := &Transport{
		nc: nc, cnc: nc, js: js, cfg: cfg, n: names{cfg.Namespace}, log: cfg.Logger,
		consumers: make(map[*consumer]struct{}), gone: make(chan struct{}),
	}
	if err := t.ensureStreams(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// ensureStreams creates the namespace's replay and dead-letter streams;
// each topic's events stream is made when the topic is first used.
func (t *Transport) ensureStreams(ctx context.Context) error {
	var err error
	t.replay, err = t.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        t.n.replayStream(),
		Description: "troupe dead letters replayed to one subscription, namespace " + t.cfg.Namespace,
		Subjects:    []string{t.n.replaySubjects()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    t.cfg.Replicas,
		Duplicates:  t.cfg.DedupWindow,
	})
	if err != nil {
		return fmt.Errorf("natsjs: create replay stream: %w%s", err, jsHint(err))
	}
	t.dead, err = t.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        t.n.deadStream(),
		Description: "troupe dead letters, namespace " + t.cfg.Namespace,
		Subjects:    []string{t.n.deadSubjects()},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      t.cfg.DeadLetterRetention,
		Storage:     jetstream.FileStorage,
		Replicas:    t.cfg.Replicas,
		Duplicates:  t.cfg.DedupWindow,
	})
	if err != nil {
		return fmt.Errorf("natsjs: create dead-letter stream: %w", err)
	}
	return nil
}

// Conn returns the transport's NATS connection for publishing and stream
// management (consumers may use a second one).
func (t *Transport) Conn() *nats.Conn { return t.nc }

// Server returns the embedded server the transport owns, or nil.
func (t *Transport) Server() *Server { return t.server }

// Declare implements [transport.Transport].
func (t *Transport) Declare(ctx context.Context, subs ...transport.Subscription) error {
	if t.isClosed() {
		return transport.ErrClosed
	}
	for _, s := range subs {
		if _, _, _, err := t.declare(ctx, s.WithDefaults()); err != nil {
			return err
		}
	}
	return nil
}

// declare creates or updates the two durable consumers of a subscription,
// the one on its topic's stream first, and returns them with that stream's
// name.
func (t *Transport) declare(ctx context.Context, s transport.Subscription) (main, replay jetstream.Consumer, stream string, err error) {
	if err := s.Validate(); err != nil {
		return nil, nil, "", err
	}
	events, err := t.topicStream(ctx, s.Topic)
	if err != nil {
		return nil, nil, "", fmt.Errorf("natsjs: declare subscription %s: %w", s.String(), err)
	}
	stream = events.CachedInfo().Config.Name
	name := consumerName(s.SubscriptionRef)
	cc := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "troupe subscription " + s.String() + " to " + s.Topic,
		FilterSubject: t.n.topicFilter(s.Topic),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.Lease,
		MaxDeliver:    -1, // troupe counts attempts and dead-letters itself
		MaxAckPending: t.cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	}
	if s.StartAtBeginning {
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	// The deliver policy of an existing consumer cannot change; keep it, so
	// that redeclaring only updates tuning.
	if c, err := events.Consumer(ctx, name); err == nil {
		info := c.CachedInfo()
		cc.DeliverPolicy = info.Config.DeliverPolicy
		cc.OptStartSeq = info.Config.OptStartSeq
		cc.OptStartTime = info.Config.OptStartTime
		if info.Config.FilterSubject != cc.FilterSubject {
			return nil, nil, "", topicChanged(s, info.Config.FilterSubject, cc.FilterSubject)
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil, "", fmt.Errorf("natsjs: look up subscription %s: %w", s.String(), err)
	} else if elsewhere, err := t.consumerStreams(ctx, name); err != nil {
		return nil, nil, "", fmt.Errorf("natsjs: look up subscription %s: %w", s.String(), err)
	} else if elsewhere = slices.DeleteFunc(elsewhere, func(s string) bool { return s == stream }); len(elsewhere) > 0 {
		// A new consumer here while the subscription has one on another
		// topic's stream: its topic changed.
		return nil, nil, "", topicChanged(s, "stream "+strings.Join(elsewhere, ", "), "stream "+stream)
	}
	main, err = events.CreateOrUpdateConsumer(ctx, cc)
	if err != nil {
		return nil, nil, "", fmt.Errorf("natsjs: declare subscription %s: %w", s.String(), err)
	}
	t.rememberSubscription(name, stream)
	rc := cc
	rc.Description = "troupe replays for subscription " + s.String()
	rc.FilterSubject = t.n.replaySubject(s.SubscriptionRef)
	rc.DeliverPolicy = jetstream.DeliverAllPolicy
	rc.OptStartSeq, rc.OptStartTime = 0, nil
	replay, err = t.replay.CreateOrUpdateConsumer(ctx, rc)
	if err != nil {
		return nil, nil, "", fmt.Errorf("natsjs: declare replay consumer of %s: %w", s.String(), err)
	}
	return main, replay, stream, nil
}

func topicChanged(s transport.Subscription, was, now string) error {
	return fmt.Errorf("natsjs: subscription %s already exists on %s, not %s (topic %s): a subscription cannot change its topic; give it a new name",
		s.String(), was, now, s.Topic)
}

// Publish implements [transport.Transport]. Messages are sent pipelined and
// confirmed together. At most 16,384 are unconfirmed at once per transport;
// a larger batch, or many concurrent ones, wait for room until ctx ends (30s
// without a deadline) rather than fail after nats.go's default 200ms.
func (t *Transport) Publish(ctx context.Context, msgs ...*transport.Message) error {
	if t.closed.Load() { // a closed connection fails the publish below
		return transport.ErrClosed
	}
	stall := publishStallWait
	if d, ok := ctx.Deadline(); ok {
		stall = max(time.Until(d), time.Millisecond)
	}
	room := jetstream.WithStallWait(stall)
	out := make([]*nats.Msg, len(msgs))
	for i, m := range msgs {
		nm, w, err := t.encode(m)
		if err != nil {
			return err
		}
		if err := t.ensureTopic(ctx, m.Type, w); err != nil {
			return err
		}
		out[i] = nm
	}
	futures := make([]jetstream.PubAckFuture, len(out))
	for i, nm := range out {
		f, err := t.js.PublishMsgAsync(nm, room)
		if err != nil {
			return t.publishErr(msgs[i], err)
		}
		futures[i] = f
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return t.publishErr(msgs[i], err)
		case <-ctx.Done():
			return fmt.Errorf("natsjs: publish %s: waiting for confirm: %w", msgs[i].Type, ctx.Err())
		case <-t.gone:
			return fmt.Errorf("natsjs: publish %s: closed while waiting for the confirm (the event may have been stored): %w", msgs[i].Type, transport.ErrClosed)
		}
	}
	return nil
}

func (t *Transport) publishErr(m *transport.Message, err error) error {
	if err == nil {
		return nil
	}
	if t.closed.Load() || t.nc.IsClosed() {
		// nats.go does not always wrap ErrConnectionClosed (setting up its
		// reply subscription on a closed connection, for one).
		return fmt.Errorf("natsjs: publish %s: %w: %v", m.Type, transport.ErrClosed, err)
	}
	switch {
	case errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("natsjs: publish %s: %w", m.Type, transport.ErrClosed)
	case errors.Is(err, nats.ErrMaxPayload) || strings.Contains(err.Error(), "maximum payload"):
		return fmt.Errorf("natsjs: publish %s: %w: %v", m.Type, transport.ErrTooLarge, err)
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		// Deleted by hand, most likely, with the consumers on it. Making it
		// again here would store events that no subscription reads until a
		// restart declares them anew, from then on: keep failing instead.
		return fmt.Errorf("natsjs: publish %s: no stream stored it (was the topic's stream deleted? restart the app to declare it again): %w", m.Type, err)
	}
	return fmt.Errorf("natsjs: publish %s: %w", m.Type, err)
}

// encode maps a message to a NATS message in CloudEvents binary mode, as
// the CloudEvents NATS protocol binding says: every attribute, extensions
// included, in a ce- header with its value percent-encoded
// (datacontenttype as ce-datacontenttype); the W3C traceparent header
// beside them; the data as the body. It returns what the transport knows
// of the message's type.
//
// It is on the path of every publish, so it allocates little: the subject
// and the header values that repeat from message to message (spec version,
// type, source, content type) are made once per transport and shared, as
// nats.go only reads them, and the values that are the message's own (id,
// time, correlation, ...) share one allocation.
func (t *Transport) encode(m *transport.Message) (*nats.Msg, *wireType, error) {
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("natsjs: publish: %w", err)
	}
	if len(m.Data) > t.cfg.MaxMessageBytes {
		return nil, nil, fmt.Errorf("natsjs: publish %s: %w: %d bytes, limit %d", m.Type, transport.ErrTooLarge, len(m.Data), t.cfg.MaxMessageBytes)
	}
	h := make(nats.Header, 11)
	own := make([]string, 0, 6+len(m.Extensions))
	transport.EncodeHeaders(m, func(k, v string) {
		switch k {
		case transport.HeaderContentType:
			// The NATS binding names datacontenttype as an attribute header.
			h[transport.HeaderDataContentType] = t.wire.value(v)
		case transport.HeaderSpecVersion, transport.HeaderType, transport.HeaderSource:
			h[k] = t.wire.value(v)
		default:
			own = append(own, transport.EscapeHeaderValue(v))
			h[k] = own[len(own)-1 : len(own) : len(own)]
		}
	})
	h[jetstream.MsgIDHeader] = h[transport.HeaderID]
	w := t.wire.wireType(t.n, m.Type)
	return &nats.Msg{Subject: w.subject, Data: m.Data, Header: h}, w, nil
}

// wireCache holds what encode shares between messages. Both maps are
// bounded by the app's topics and services; maxWireCache caps them anyway,
// past which values are made per message.
type wireCache struct {
	types  sync.Map // wire type -> *wireType
	values sync.Map // header value -> []string{value}
	size   atomic.Int64
}

// wireType is what a publish needs to know of its event's type.
type wireType struct {
	subject string
	topic   string
	ready   atomic.Bool // the topic's stream is known to exist
}

const maxWireCache = 4096

func (w *wireCache) wireType(n names, wt string) *wireType {
	if e, ok := w.types.Load(wt); ok {
		return e.(*wireType)
	}
	topic, version, _ := transport.ParseType(wt) // validated by the caller
	e := &wireType{subject: n.eventSubject(topic, version), topic: topic}
	if w.size.Add(1) <= maxWireCache {
		if prev, loaded := w.types.LoadOrStore(wt, e); loaded {
			return prev.(*wireType)
		}
	}
	return e
}

func (w *wireCache) value(v string) []string {
	if vs, ok := w.values.Load(v); ok {
		return vs.([]string)
	}
	vs := []string{transport.EscapeHeaderValue(v)}
	if w.size.Add(1) <= maxWireCache {
		w.values.Store(v, vs)
	}
	return vs
}

// publishStallWait bounds the wait for room among unconfirmed publishes when
// the caller's context has no deadline.
const publishStallWait = 30 * time.Second

// Close implements [transport.Transport].
func (t *Transport) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		return nil
	}
	t.closed.Store(true)
	cs := make([]*consumer, 0, len(t.consumers))
	for c := range t.consumers {
		cs = append(cs, c)
	}
	for tp := range t.taps {
		_ = tp.Close()
	}
	t.mu.Unlock()
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Stop(ctx))
	}
	if t.ownsConn {
		for _, nc := range t.conns() {
			if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				errs = append(errs, err)
			}
			waitClosed(ctx, nc)
		}
		t.markGone()
	}
	if t.server != nil {
		t.server.Shutdown()
	}
	return errors.Join(errs...)
}

// Kill drops the connection at once without settling anything, as a process
// killed with SIGKILL would. It exists for tests of redelivery.
func (t *Transport) Kill() {
	t.mu.Lock()
	t.closed.Store(true)
	t.mu.Unlock()
	for _, nc := range t.conns() {
		nc.Close()
	}
	t.markGone()
	if t.server != nil {
		t.server.Shutdown()
	}
}

func (t *Transport) isClosed() bool {
	return t.closed.Load() || t.nc.IsClosed() || t.cnc.IsClosed()
}

// markGone releases the publishes waiting for a confirm once the
// transport's connections are closed.
func (t *Transport) markGone() { t.goneOnce.Do(func() { close(t.gone) }) }

// conns returns the transport's connections, the consumers' first.
func (t *Transport) conns() []*nats.Conn {
	if t.cnc == t.nc {
		return []*nats.Conn{t.nc}
	}
	return []*nats.Conn{t.cnc, t.nc}
}

func waitClosed(ctx context.Context, nc *nats.Conn) {
	done := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(done) })
	if nc.IsClosed() {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
		nc.Close()
	}
}

// redact hides a password in a server URL (or a comma-separated list of
// them) for error messages.
func redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		} else if at := strings.LastIndex(p, "@"); at >= 0 {
			parts[i] = "xxxxx@" + p[at+1:]
		}
	}
	return strings.Join(parts, ",")
}
