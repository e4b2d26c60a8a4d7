package troupe

import (
	"errors"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// Errors returned by troupe. Match them with errors.Is.
var (
	// ErrNoApp is returned by Publish when its context carries no app: call it
	// inside a handler or an HTTP route of a service, or pass app.Context(ctx).
	ErrNoApp = errors.New("troupe: no app in context: publish from a handler or a service's HTTP route, or use app.Context(ctx)")
	// ErrUndeclaredTopic is returned when publishing to a topic that no
	// service of the app declares with Service.Publishes or App.Topics.
	ErrUndeclaredTopic = errors.New("troupe: topic is not declared in this app")
	// ErrEncode is returned when a value cannot be encoded as its topic's data.
	ErrEncode = errors.New("troupe: cannot encode event data")
	// ErrUnknownVersion marks an event whose version the topic does not know;
	// such events are dead-lettered without calling the handler.
	ErrUnknownVersion = errors.New("troupe: unknown event version")
	// ErrTooLarge is returned when an encoded event exceeds the transport's
	// limit ([DefaultMaxMessageBytes] by default). Nothing is published.
	ErrTooLarge = transport.ErrTooLarge
	// ErrMalformed marks an event that cannot be read: missing CloudEvents
	// attributes, a content type other than JSON, or data that does not decode
	// into the topic's type. Such events are dead-lettered.
	ErrMalformed = transport.ErrMalformed
	// ErrNotStarted is returned by operations that need a running app.
	ErrNotStarted = errors.New("troupe: app is not started")
)

// Permanent wraps err so that the event is not retried: it goes to the
// subscription's dead letters at once, where it can be inspected and
// replayed. Use it for failures that another attempt cannot fix (a
// validation error, a missing record that will never appear).
// Permanent(nil) is nil.
func Permanent(err error) error { return transport.Permanent(err) }

// IsPermanent reports whether err was wrapped by [Permanent].
func IsPermanent(err error) bool { return transport.IsPermanent(err) }

// RetryAfter wraps err so that the next attempt comes after d rather than
// after the subscription's backoff; use it when the failure says when to come
// back (a rate limit, a Retry-After header). The attempt still counts toward
// the subscription's MaxAttempts. RetryAfter(d, nil) is nil.
func RetryAfter(d time.Duration, err error) error { return transport.RetryAfter(d, err) }
