// Package transport defines the contract between troupe and a message broker.
//
// Application code does not use this package directly: it picks a transport by
// URL (embedded:, nats://, amqp://) and talks to the troupe package. Transport
// authors implement [Transport] and prove it with the conformance suite in
// transport/transporttest, which every transport in this repository runs
// against a real broker.
//
// # Delivery contract
//
//   - A Subscription is a (service, name) pair bound to one topic. Every
//     subscription gets its own copy of each event on its topic (fan-out); all
//     consumers of one subscription share its events (competing consumers), and
//     no event is handled by two consumers at once while its lease is renewed.
//   - [Transport.Declare] makes subscriptions durable before anything is consumed,
//     so an event published after Declare and before the first Consume is kept.
//   - [Transport.Publish] returns only once the broker has stored every message
//     durably (publisher confirm), or returns an error; a message never vanishes
//     silently.
//   - A [Handler] returning nil acks. An error schedules a redelivery by the
//     broker after the subscription's backoff, so a crash loses nothing. After the
//     last attempt, or at once for a [Permanent] error, the message moves to the
//     subscription's dead-letter store with the error, the attempt count and the
//     times of its first and last attempt.
//   - A message the transport cannot accept (missing CloudEvents attributes,
//     larger than the subscription's limit, a ce-type of another topic) goes
//     to the dead-letter store with a reason; it never stops the consumer.
//     [Pipeline] takes every delivery through these steps, so that every
//     transport decides alike.
//   - [Transport.Replay] sends a dead letter back to the one subscription that
//     failed it, never to the other subscriptions of its topic.
package transport

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SpecVersion is the CloudEvents version troupe writes and accepts.
const SpecVersion = "1.0"

// Message is one event on the wire: the CloudEvents attributes troupe uses and
// the encoded data. Transports map the attributes to headers in CloudEvents
// binary content mode (ce-id, ce-type, ...), and the data to the body.
type Message struct {
	// ID is the event id (ce-id). Unique per source; transports that can
	// deduplicate use it to drop a second publish of the same event.
	ID string
	// Type is the wire type, "<topic>.v<version>" (ce-type).
	Type string
	// Source names the publishing app and service (ce-source).
	Source string
	// Time is when the event happened (ce-time).
	Time time.Time
	// CorrelationID groups the events of one business transaction
	// (ce-correlationid).
	CorrelationID string
	// CausationID is the id of the event whose handler published this one;
	// empty for the first event of a transaction (ce-causationid).
	CausationID string
	// TraceParent is the W3C trace context (traceparent).
	TraceParent string
	// DataContentType is the media type of Data; "application/json" when empty.
	DataContentType string
	// Extensions holds any other CloudEvents extension attributes, keyed by
	// attribute name without the "ce-" prefix. CloudEvents attribute names are
	// lower case, and transports return the keys in lower case. On publish,
	// a name must be lower-case letters and digits and not one of a core
	// attribute or of the attributes above ([Message.Validate]).
	Extensions map[string]string
	// Data is the encoded event data.
	Data []byte
}

// Topic returns the topic name and version encoded in m.Type.
func (m *Message) Topic() (name string, version int, err error) {
	return ParseType(m.Type)
}

// Validate reports what keeps m from being published, as an error wrapping
// [ErrMalformed]: the first required attribute that is missing or wrong, or
// an extension whose name is not a CloudEvents attribute name (lower-case
// letters and digits) or is taken by a core attribute (id, source, type,
// time, specversion, datacontenttype, dataschema, subject, data) or by one
// troupe carries in a field (correlationid, causationid, traceparent): its
// header would overwrite the real one. Every transport calls it before it
// publishes anything.
func (m *Message) Validate() error {
	if err := m.validateRequired(); err != nil {
		return err
	}
	for name := range m.Extensions {
		if err := checkExtension(name); err != nil {
			return err
		}
	}
	return nil
}

// attributeFields are the attribute names an extension must not take: the
// CloudEvents core attributes, and those troupe maps to fields of Message.
var attributeFields = map[string]string{
	"id": "ID", "source": "Source", "type": "Type", "time": "Time", "specversion": "",
	"datacontenttype": "DataContentType", "dataschema": "", "subject": "", "data": "Data",
	"correlationid": "CorrelationID", "causationid": "CausationID", "traceparent": "TraceParent",
}

func checkExtension(name string) error {
	if field, taken := attributeFields[name]; taken {
		if field == "" {
			return fmt.Errorf("%w: extension %q is a CloudEvents core attribute: an extension cannot take its name", ErrMalformed, name)
		}
		return fmt.Errorf("%w: extension %q is a CloudEvents attribute troupe writes itself: set Message.%s instead", ErrMalformed, name, field)
	}
	if name == "" {
		return fmt.Errorf("%w: an extension has an empty name", ErrMalformed)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("%w: extension %q: CloudEvents attribute names are lower-case letters a-z and digits", ErrMalformed, name)
		}
	}
	return nil
}

// validateRequired reports the first required attribute that is missing
// or wrong. Reading a message checks only this: extensions a foreign
// producer named loosely are kept, not refused.
func (m *Message) validateRequired() error {
	switch {
	case m.ID == "":
		return fmt.Errorf("%w: missing ce-id", ErrMalformed)
	case m.Source == "":
		return fmt.Errorf("%w: missing ce-source", ErrMalformed)
	case m.Type == "":
		return fmt.Errorf("%w: missing ce-type", ErrMalformed)
	}
	if _, _, err := ParseType(m.Type); err != nil {
		return err
	}
	return nil
}

// ValidName reports whether s can name a topic, service or subscription: a
// letter, then up to 127 letters, digits, '_' or '-'. Such names are safe as
// NATS subject tokens, AMQP routing-key words and queue names. It runs for
// every delivered event, so it is a loop rather than a regular expression.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 128 || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// WireType returns the wire type of a topic version: "<topic>.v<version>".
func WireType(topic string, version int) string {
	return topic + ".v" + strconv.Itoa(version)
}

// ParseType splits a wire type "<topic>.v<version>". It fails with an error
// wrapping [ErrMalformed] for anything else.
func ParseType(t string) (topic string, version int, err error) {
	i := strings.LastIndex(t, ".v")
	if i <= 0 {
		return "", 0, fmt.Errorf("%w: ce-type %q is not <topic>.v<version>", ErrMalformed, t)
	}
	v, err := strconv.Atoi(t[i+2:])
	if err != nil || v < 1 || !ValidName(t[:i]) {
		return "", 0, fmt.Errorf("%w: ce-type %q is not <topic>.v<version>", ErrMalformed, t)
	}
	return t[:i], v, nil
}

// SubscriptionRef names a subscription: the service that owns it and its name
// within that service.
type SubscriptionRef struct {
	Service string
	Name    string
}

// String returns "service.name".
func (r SubscriptionRef) String() string { return r.Service + "." + r.Name }

// Subscription declares a durable subscription to one topic and how its
// deliveries are retried. The zero values of the tuning fields select the
// defaults documented on each field; [Subscription.WithDefaults] fills them in.
type Subscription struct {
	SubscriptionRef
	// Topic is the topic name; the subscription receives every version of it.
	Topic string
	// StartAtBeginning makes a newly declared subscription receive the events
	// already stored for its topic. Default false: only events published after
	// the subscription was first declared. It has no effect on a subscription
	// that already exists.
	StartAtBeginning bool
	// Retry decides how often and when a failed delivery is tried again.
	Retry RetryPolicy
	// Lease is how long the broker waits for an outcome before it hands a
	// delivery to another consumer. While a handler runs, the transport renews
	// the lease, so a live handler keeps its message however long it takes and a
	// dead process loses its messages to others after at most one lease.
	// Default 30s.
	Lease time.Duration
	// Concurrency is how many handlers run at once in this consumer. Default 8.
	Concurrency int
	// Prefetch is how many messages a consumer may hold beyond the ones being
	// handled, to keep handlers busy and amortize the broker round trips.
	// Transports renew the lease of held messages too, so a long queue does
	// not let them expire. Default 256.
	Prefetch int
	// MaxMessageBytes is the largest message body the consumer accepts; a
	// larger one is dead-lettered with reason [ReasonOversized]. Default 1 MiB.
	MaxMessageBytes int
	// Ordered asks for the events of each ordering key (the [PartitionKey]
	// extension) to be handled one at a time, in the order the broker
	// stored them, even with several consumers; events of different keys
	// are handled in parallel, up to Concurrency, and events without a key
	// are not ordered. To keep that order, one consumer of the subscription
	// is active at a time (the others stand by and take over when it stops
	// or dies), and a failed attempt is retried in place: the transport
	// holds the event, renews its lease and calls the handler again after
	// the backoff, while later events of its key wait. An event
	// dead-lettered after its last attempt lets the next one of its key
	// through. Replayed dead letters are not ordered. Default false.
	Ordered bool
}

// RetryPolicy says how a failed delivery is retried: attempt n (1-based) that
// fails is retried after min(MaxBackoff, MinBackoff·2^(n-1)), spread by ±Jitter.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts before the message is dead-lettered,
	// counting the first. Default 8. 1 means no retries.
	MaxAttempts int
	// MinBackoff is the delay after the first failure. Default 500ms.
	MinBackoff time.Duration
	// MaxBackoff caps the delay. Default 1m.
	MaxBackoff time.Duration
	// Jitter spreads each delay uniformly by ±Jitter×delay so retries of many
	// messages do not arrive together. Between 0 and 1; default 0.2
	// ([DefaultJitter]). Use [NoJitter] for exact delays; it stays NoJitter
	// when defaults are filled in.
	Jitter float64
}

// NoJitter selects exact backoff delays in [RetryPolicy.Jitter].
const NoJitter = -1

// Defaults used by [Subscription.WithDefaults].
const (
	DefaultMaxAttempts     = 8
	DefaultMinBackoff      = 500 * time.Millisecond
	DefaultMaxBackoff      = time.Minute
	DefaultJitter          = 0.2
	DefaultLease           = 30 * time.Second
	DefaultConcurrency     = 8
	DefaultPrefetch        = 256
	DefaultMaxMessageBytes = 1 << 20
)

// WithDefaults returns s with every zero tuning field set to its default.
// It is idempotent: transports call it again on subscriptions the app has
// already completed.
func (s Subscription) WithDefaults() Subscription {
	r := &s.Retry
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.MinBackoff <= 0 {
		r.MinBackoff = DefaultMinBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	if r.MaxBackoff < r.MinBackoff {
		r.MaxBackoff = r.MinBackoff
	}
	switch {
	case r.Jitter == 0:
		r.Jitter = DefaultJitter
	case r.Jitter < 0:
		r.Jitter = NoJitter // kept, so that defaults filled in again keep it
	case r.Jitter > 1:
		r.Jitter = 1
	}
	if s.Lease <= 0 {
		s.Lease = DefaultLease
	}
	if s.Concurrency <= 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.Prefetch <= 0 {
		s.Prefetch = DefaultPrefetch
	}
	if s.MaxMessageBytes <= 0 {
		s.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return s
}

// Validate reports a subscription that cannot be declared.
func (s Subscription) Validate() error {
	if !ValidName(s.Service) {
		return fmt.Errorf("transport: service name %q: use a letter followed by letters, digits, '_' or '-'", s.Service)
	}
	if !ValidName(s.Name) {
		return fmt.Errorf("transport: subscription name %q: use a letter followed by letters, digits, '_' or '-'", s.Name)
	}
	if !ValidName(s.Topic) {
		return fmt.Errorf("transport: topic name %q: use a letter followed by letters, digits, '_' or '-'", s.Topic)
	}
	return nil
}

// Delay returns the backoff before the next attempt after attempt n failed.
// rnd is a uniform random number in [0,1) used for jitter.
func (p RetryPolicy) Delay(n int, rnd float64) time.Duration {
	d := p.MinBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	if p.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + p.Jitter*(2*rnd-1)))
	}
	return max(d, 0)
}

// Delivery is one attempt at handling a message for a subscription.
type Delivery struct {
	Message
	// Subscription is the subscription the message was delivered to.
	Subscription SubscriptionRef
	// Attempt counts deliveries of this message to this subscription, from 1.
	// A replayed dead letter starts again at 1.
	Attempt int
	// Replays counts how often this message was replayed from the dead-letter
	// store; 0 for a message that never was.
	Replays int
	// Abandoned is set when the message comes back after its last attempt
	// because the consumer running that attempt died (its lease ran out).
	// The handler must not handle it again (it may be what killed the
	// consumer): it returns an error, and the message is dead-lettered with
	// [ReasonAbandoned], unless its [Hooks.Compensate] settles it another
	// way; or it returns nil to acknowledge it.
	Abandoned error

	hooks Hooks // registered by the handler for this attempt
}

// SetHooks registers h for the current attempt: the pipeline asks it to
// compensate a final failure and tells it the attempt's outcome. A handler
// calls it before it returns; it replaces hooks set earlier in the same
// attempt.
func (d *Delivery) SetHooks(h Hooks) { d.hooks = h }

// Hooks returns the hooks registered for the current attempt, or nil.
func (d *Delivery) Hooks() Hooks { return d.hooks }

// Handler handles one delivery. Its result decides the message's fate: nil acks
// it; an error wrapped by [Permanent] dead-letters it at once; [RetryAfter] sets
// the delay before the next attempt; any other error retries it after the
// subscription's backoff until the last attempt, which dead-letters it. A panic
// is an error. ctx is cancelled when the consumer stops hard; an attempt that
// fails then is interrupted and delivered again, neither retried nor
// dead-lettered. The [Pipeline] decides and settles the outcome; a handler
// that wants to know it registers [Hooks] with [Delivery.SetHooks].
type Handler func(ctx context.Context, d *Delivery) error

// Transport connects troupe to one broker. All methods are safe for
// concurrent use.
type Transport interface {
	// Declare makes each subscription durable on the broker, creating it where
	// it does not exist, so that events published from now on are kept for it
	// even before anyone consumes. Declaring an existing subscription again is
	// safe and updates its tuning.
	Declare(ctx context.Context, subs ...Subscription) error

	// Publish stores messages durably and returns once the broker confirmed
	// all of them. On error some of them may have been stored; publishing them
	// again is safe where the broker deduplicates by id. A message whose data
	// exceeds the transport's limit ([DefaultMaxMessageBytes] unless the
	// transport's config says otherwise) fails with an error wrapping
	// [ErrTooLarge]; one with a missing attribute fails with [ErrMalformed].
	// Both are checked for every message before any is sent, so then nothing
	// is published.
	Publish(ctx context.Context, msgs ...*Message) error

	// Consume starts handling the subscription's messages with h, after
	// declaring it as Declare would. It returns once the consumer is running.
	// ctx bounds the start only; stop the consumer with Consumer.Stop or
	// Close.
	Consume(ctx context.Context, sub Subscription, h Handler) (Consumer, error)

	// DeadLetters lists up to limit dead letters of a subscription, oldest
	// first (limit <= 0: all).
	DeadLetters(ctx context.Context, sub SubscriptionRef, limit int) ([]DeadLetter, error)

	// Replay moves one dead letter, named by its DeadLetter.ID, back to the
	// subscription that failed it, and only to it, as a fresh delivery with
	// its attempt count reset and Replays raised by one. It fails with
	// [ErrNotFound] for an unknown id.
	Replay(ctx context.Context, sub SubscriptionRef, id string) error

	// Discard deletes one dead letter. It fails with [ErrNotFound] for an
	// unknown id.
	Discard(ctx context.Context, sub SubscriptionRef, id string) error

	// Close stops every consumer as Consumer.Stop would, then closes the
	// connection to the broker. Calling it again returns nil. After Close,
	// every other method fails with an error wrapping [ErrClosed].
	Close(ctx context.Context) error
}

// Consumer is a running consumer of one subscription.
type Consumer interface {
	// Stop stops taking new messages, waits for running handlers to finish and
	// settles their outcome with the broker, and returns. Messages fetched but
	// not started go back to the broker. If ctx ends first, running handlers'
	// contexts are cancelled and their messages are left for redelivery.
	Stop(ctx context.Context) error
	// Done is closed when the consumer has stopped.
	Done() <-chan struct{}
}

// DeadLetter is a message a subscription gave up on.
type DeadLetter struct {
	// ID identifies the dead letter within its subscription's store.
	ID string
	// Message is the message as it was delivered. For a message that could not
	// be read (reason [ReasonMalformed]), only the attributes that were present.
	Message Message
	// Subscription is the subscription that failed it.
	Subscription SubscriptionRef
	// Reason says why: handler error, permanent error, malformed, oversized...
	Reason Reason
	// Error is the last error's text.
	Error string
	// Attempts is how many times it was handled.
	Attempts int
	// Replays is how often it had been replayed before this failure.
	Replays int
	// FirstAttempt and LastAttempt bound the attempts; DeadAt is when it was
	// dead-lettered.
	FirstAttempt, LastAttempt, DeadAt time.Time
	// Headers holds the raw headers of an unreadable message, for diagnosis.
	Headers map[string][]string
}

// Reason says why a message was dead-lettered.
type Reason string

// Reasons for dead-lettering.
const (
	ReasonFailed    Reason = "failed"    // every attempt returned an error
	ReasonPermanent Reason = "permanent" // the handler returned a permanent error
	ReasonMalformed Reason = "malformed" // missing or invalid CloudEvents attributes or data
	ReasonOversized Reason = "oversized" // larger than the subscription accepts
	ReasonAbandoned Reason = "abandoned" // the consumer died during the last attempt
	ReasonMisrouted Reason = "misrouted" // its ce-type names another topic than the subscription's
)

// Errors reported by transports.
var (
	// ErrMalformed marks a message without the attributes troupe needs.
	ErrMalformed = errors.New("malformed message")
	// ErrTooLarge marks a message larger than the broker or subscription accepts.
	ErrTooLarge = errors.New("message too large")
	// ErrNotFound marks an unknown dead letter.
	ErrNotFound = errors.New("not found")
	// ErrClosed is returned by a transport that was closed.
	ErrClosed = errors.New("transport closed")
)

// PermanentError wraps an error that must not be retried.
type PermanentError struct{ Err error }

// Error returns "permanent: " and the wrapped error's text.
func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the delivery is dead-lettered without further
// attempts. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err or any error it wraps is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError asks for the next attempt after a given delay instead of
// the subscription's backoff.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

// Error names the delay and the wrapped error.
func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.Delay, e.Err)
}

// Unwrap returns the wrapped error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err so that the next attempt comes after d. The attempt
// still counts toward the maximum. RetryAfter(d, nil) is nil.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{Delay: d, Err: err}
}

// RetryDelay returns the delay asked for by a [RetryAfter] error in err's chain.
func RetryDelay(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.Delay, true
	}
	return 0, false
}
