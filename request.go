package troupe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// DefaultRequestTimeout bounds a [Request] whose context has no deadline.
const DefaultRequestTimeout = 10 * time.Second

// ErrRequestTimeout is returned by [Request] when no outcome arrived in
// time. The business transaction goes on; its correlation id, in the
// error's text, finds it later.
var ErrRequestTimeout = errors.New("troupe: no outcome before the request's deadline")

// ErrNoTap is returned by [Request] on a transport that cannot show events
// as they pass (it does not implement transport.Tapper).
var ErrNoTap = errors.New("troupe: this transport cannot tap events, which request/reply needs")

// Reply is the outcome event a [Request] waited for. Its Envelope says
// which event it was; [ReplyAs] decodes its data.
type Reply struct {
	Envelope
	msg *transport.Message
}

// Data returns the reply's encoded data (JSON), as it came.
func (r Reply) Data() json.RawMessage {
	if r.msg == nil {
		return nil
	}
	return json.RawMessage(r.msg.Data)
}

// Is reports whether the reply is an event of topic t (any version).
func (r Reply) Is(t AnyTopic) bool {
	name, _, err := transport.ParseType(r.Type)
	return err == nil && name == t.Name()
}

// ReplyAs decodes r's data as an event of t, upcasting older versions as
// handlers do. It fails when r is an event of another topic, or with
// [ErrMalformed] or [ErrUnknownVersion] as a handler's decoding would.
func ReplyAs[T any](r Reply, t *Topic[T]) (T, error) {
	var zero T
	if r.msg == nil || !r.Is(t) {
		return zero, fmt.Errorf("troupe: reply is %s, not %s", r.Type, t.Type())
	}
	return t.decode(&transport.Delivery{Message: *r.msg})
}

// Request publishes v to t as [Publish] does and waits for the first event
// of the business transaction (same correlation id) on one of the outcome
// topics, such as order_confirmed or order_rejected. It is for the edge of
// a choreography, typically an HTTP handler that wants to answer with the
// result rather than 202 Accepted; it works across processes, since it
// listens on the broker.
//
// ctx bounds the wait; without a deadline, [DefaultRequestTimeout] does.
// When time runs out, Request returns an error wrapping
// [ErrRequestTimeout] and the transaction goes on. Give each request its
// own correlation id (the default: a new one per publish outside a
// handler): two requests waiting on one id both get its first outcome.
//
// It fails before publishing with [ErrNoApp], [ErrUndeclaredTopic] (for t
// or an outcome topic the app does not know), [ErrNoTap], or as Publish
// does. Outcomes are watched through a tap (transport.Tapper), which sees
// events published while the broker connection is up: an outcome
// published during a reconnect is missed and the request times out.
func Request[T any](ctx context.Context, t *Topic[T], v T, outcomes ...AnyTopic) (Reply, error) {
	if len(outcomes) == 0 {
		return Reply{}, fmt.Errorf("troupe: request %s: name at least one outcome topic", t.Type())
	}
	a, msgs, err := encode(ctx, t, []T{v})
	if err != nil {
		return Reply{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	req := msgs[0]
	e, err := a.expect(ctx, req.CorrelationID, req.ID, outcomes)
	if err != nil {
		return Reply{}, fmt.Errorf("troupe: request %s: %w", t.Type(), err)
	}
	defer e.Close()
	if err := a.publish(ctx, msgs); err != nil {
		return Reply{}, err
	}
	r, err := e.Wait(ctx)
	if err != nil {
		return Reply{}, fmt.Errorf("troupe: request %s: %w", t.Type(), err)
	}
	return r, nil
}

// Expectation waits for the first outcome event of one business
// transaction; see [Expect].
type Expectation struct {
	a     *App
	w     *waiter
	names []string
}

// Expect starts listening for the first event of business transaction
// correlationID on one of the outcome topics, before the event that starts
// it is published, so the outcome cannot pass unseen; [Expectation.Wait]
// then waits for it. It is [Request] in two halves, for an edge whose first
// event does not go out through Publish, such as one committed with the
// outbox:
//
//	e, err := troupe.Expect(ctx, userID, MailSent, MailFailed)
//	... commit the user and outbox.PublishTx(ctx, tx, UserRegistered, u) under correlation id userID ...
//	reply, err := e.Wait(ctx)
//	e.Close()
//
// ctx must carry the app. It fails with [ErrNoApp], [ErrNotStarted],
// [ErrUndeclaredTopic] for an outcome the app does not know, or [ErrNoTap].
// Close the expectation when done.
func Expect(ctx context.Context, correlationID string, outcomes ...AnyTopic) (*Expectation, error) {
	a := FromContext(ctx)
	switch {
	case a == nil:
		return nil, fmt.Errorf("troupe: expect: %w", ErrNoApp)
	case correlationID == "":
		return nil, errors.New("troupe: expect: empty correlation id")
	case len(outcomes) == 0:
		return nil, errors.New("troupe: expect: name at least one outcome topic")
	}
	e, err := a.expect(ctx, correlationID, "", outcomes)
	if err != nil {
		return nil, fmt.Errorf("troupe: expect: %w", err)
	}
	return e, nil
}

func (a *App) expect(ctx context.Context, correlationID, requestID string, outcomes []AnyTopic) (*Expectation, error) {
	names := make([]string, len(outcomes))
	for i, o := range outcomes {
		if err := a.checkKnown(o.info()); err != nil {
			return nil, fmt.Errorf("outcome: %w", err)
		}
		names[i] = o.Name()
	}
	w, err := a.replies().wait(ctx, a, correlationID, requestID, names)
	if err != nil {
		return nil, err
	}
	return &Expectation{a: a, w: w, names: names}, nil
}

// Wait returns the first outcome event, which may have arrived before Wait
// was called. When ctx ends first (without a deadline,
// [DefaultRequestTimeout] bounds it), it fails with an error wrapping
// [ErrRequestTimeout] and ctx's error, naming the correlation id.
func (e *Expectation) Wait(ctx context.Context) (Reply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	select {
	case m := <-e.w.got:
		return Reply{msg: m, Envelope: EnvelopeOf(m)}, nil
	case <-ctx.Done():
		return Reply{}, fmt.Errorf("correlation id %s waiting for %s: %w (%w)",
			e.w.correlation, strings.Join(e.names, " or "), ErrRequestTimeout, ctx.Err())
	}
}

// Close stops listening. It is safe to call more than once.
func (e *Expectation) Close() { e.a.replies().cancel(e.w) }

// checkKnown rejects a topic the started app does not declare.
func (a *App) checkKnown(t topicInfo) error {
	ls := a.live.Load()
	if ls == nil {
		return ErrNotStarted
	}
	known := ls.known
	if ti, ok := known[t.name]; !ok || ti.goType != t.goType {
		return fmt.Errorf("%s: %w: add .Publishes(%s) to the service that publishes it", transport.WireType(t.name, t.version), ErrUndeclaredTopic, goIdent(t.name))
	}
	return nil
}

// replyBox routes tapped outcome events to the requests waiting for them.
type replyBox struct {
	mu      sync.Mutex
	taps    map[string]transport.Tap // by topic name
	waiting map[string][]*waiter     // by correlation id
}

type waiter struct {
	correlation string
	requestID   string
	topics      []string
	got         chan *transport.Message // buffered: one outcome
}

func (a *App) replies() *replyBox {
	a.replyOnce.Do(func() {
		a.replyBox = &replyBox{taps: make(map[string]transport.Tap), waiting: make(map[string][]*waiter)}
	})
	return a.replyBox
}

// wait registers a waiter, opening the taps it needs first, so that an
// outcome published right after cannot pass unseen.
func (b *replyBox) wait(ctx context.Context, a *App, correlation, requestID string, topics []string) (*waiter, error) {
	tr := a.Transport()
	tapper, ok := tr.(transport.Tapper)
	if !ok {
		return nil, fmt.Errorf("%w (%T)", ErrNoTap, tr)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, name := range topics {
		if tp, ok := b.taps[name]; ok {
			select {
			case <-tp.Done():
				delete(b.taps, name) // lost with a connection: open it again
			default:
				continue
			}
		}
		// The tap lives as long as the app: Stop closes it.
		tp, err := tapper.Tap(context.WithoutCancel(ctx), []string{name}, b.deliver)
		if err != nil {
			return nil, err
		}
		b.taps[name] = tp
	}
	w := &waiter{correlation: correlation, requestID: requestID, topics: topics, got: make(chan *transport.Message, 1)}
	b.waiting[correlation] = append(b.waiting[correlation], w)
	return w, nil
}

func (b *replyBox) cancel(w *waiter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.waiting[w.correlation]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(b.waiting, w.correlation)
	} else {
		b.waiting[w.correlation] = ws
	}
}

// deliver hands a tapped event to the waiters of its transaction.
func (b *replyBox) deliver(m *transport.Message) {
	name, _, err := transport.ParseType(m.Type)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.waiting[m.CorrelationID] {
		if m.ID == w.requestID || !slices.Contains(w.topics, name) {
			continue
		}
		select {
		case w.got <- m:
		default: // it already has its outcome
		}
	}
}

// close closes the taps; Stop calls it.
func (b *replyBox) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, tp := range b.taps {
		_ = tp.Close()
		delete(b.taps, name)
	}
}
