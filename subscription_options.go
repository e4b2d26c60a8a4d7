package troupe

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// Defaults of the subscription options, which each option's doc names.
// Those the broker applies are package transport's defaults.
const (
	// DefaultMaxAttempts is how many times an event is handled before it
	// is dead-lettered ([MaxAttempts]).
	DefaultMaxAttempts = transport.DefaultMaxAttempts
	// DefaultMinBackoff and DefaultMaxBackoff bound the delay between
	// attempts ([Backoff]).
	DefaultMinBackoff = transport.DefaultMinBackoff
	DefaultMaxBackoff = transport.DefaultMaxBackoff
	// DefaultJitter spreads each delay by ±20% ([Jitter]).
	DefaultJitter = transport.DefaultJitter
	// DefaultDeadline bounds one attempt of a handler ([Deadline]).
	DefaultDeadline = 30 * time.Second
	// DefaultLease is how long the broker waits before it hands the event
	// of a silent process to another ([Lease]).
	DefaultLease = transport.DefaultLease
	// DefaultConcurrency is how many events of a subscription one process
	// handles at once ([Concurrency]).
	DefaultConcurrency = transport.DefaultConcurrency
	// DefaultPrefetch is how many events a process holds ready beyond
	// those being handled ([Prefetch]).
	DefaultPrefetch = transport.DefaultPrefetch
	// DefaultMaxMessageBytes is the largest event a subscription accepts
	// and Publish sends, 1 MiB ([MaxMessageBytes], [ErrTooLarge]).
	DefaultMaxMessageBytes = transport.DefaultMaxMessageBytes
)

// SubscribeOption tunes a subscription. Each option documents its default.
type SubscribeOption func(*subscribeConfig)

type subscribeConfig struct {
	spec       transport.Subscription
	deadline   time.Duration
	emits      []AnyTopic
	compensate *compensation
	breaker    *breakerConfig
}

// Emits declares the topics this subscription's handler publishes, so the
// app's topology shows which event leads to which. Publishing a topic that
// is not declared still works but logs a warning once. Default: none
// declared, which the topology shows as a handler that publishes nothing.
func Emits(topics ...AnyTopic) SubscribeOption {
	return func(c *subscribeConfig) { c.emits = append(c.emits, topics...) }
}

// MaxAttempts sets how many times an event is handled before it is
// dead-lettered, counting the first. Default [DefaultMaxAttempts]; 1
// disables retries.
func MaxAttempts(n int) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Retry.MaxAttempts = n }
}

// Backoff sets the delay before the second attempt (min) and the cap (max);
// each further retry doubles the delay. Default [DefaultMinBackoff] and
// [DefaultMaxBackoff].
func Backoff(min, max time.Duration) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Retry.MinBackoff, c.spec.Retry.MaxBackoff = min, max }
}

// Jitter spreads each backoff delay by ±fraction (0 to 1) so that retries of
// many events do not arrive together. Default [DefaultJitter]; 0 means
// exact delays.
func Jitter(fraction float64) SubscribeOption {
	return func(c *subscribeConfig) {
		if fraction <= 0 {
			fraction = transport.NoJitter
		}
		c.spec.Retry.Jitter = fraction
	}
}

// Deadline bounds one attempt: the handler's context ends after d and the
// attempt counts as failed. Default [DefaultDeadline].
func Deadline(d time.Duration) SubscribeOption {
	return func(c *subscribeConfig) { c.deadline = d }
}

// Concurrency sets how many events of this subscription one process handles
// at once. Default [DefaultConcurrency]. Several processes running the
// service add up.
func Concurrency(n int) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Concurrency = n }
}

// Prefetch sets how many events a process may hold ready beyond those being
// handled, so handlers never wait for the broker. Held events keep their
// lease, but they are not available to other processes: lower it when
// handlers are slow and several processes share the work. Default
// [DefaultPrefetch].
func Prefetch(n int) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Prefetch = n }
}

// Lease sets how long the broker waits before handing an unsettled event to
// another process. It is renewed while the handler runs, so it bounds how
// long the events of a crashed process wait, not how long a handler may take.
// Default [DefaultLease].
func Lease(d time.Duration) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.Lease = d }
}

// StartAtBeginning makes a new subscription receive the events its topic
// already holds (within the broker's retention) instead of only those
// published after it first started. Default off. It only matters the first
// time the subscription is declared.
func StartAtBeginning() SubscribeOption {
	return func(c *subscribeConfig) { c.spec.StartAtBeginning = true }
}

// MaxMessageBytes sets the largest event this subscription accepts; larger
// ones are dead-lettered unread. Default [DefaultMaxMessageBytes].
func MaxMessageBytes(n int) SubscribeOption {
	return func(c *subscribeConfig) { c.spec.MaxMessageBytes = n }
}

// OnFailure declares the subscription's compensation: when its handler
// fails for good (a [Permanent] error, or an error on the last attempt),
// troupe publishes the event build returns to failure, in the same business
// transaction, and acknowledges the failed event instead of dead-lettering
// it, because the failure is now the business's to handle (a refund, a
// cancellation). The failure event's id is derived from the failed event,
// so a redelivery does not publish it twice where the broker deduplicates.
// If publishing it fails, the event is dead-lettered as without OnFailure.
// An event whose last attempt died with its process is compensated too,
// without running the handler again.
// Events that cannot be read (malformed, unknown version) are dead-lettered
// without compensation: there is no value to build from.
//
// The declaration is data: the topology draws the failure path. The
// service must declare failure in its Publishes, and T must be the
// subscription's event type; both are checked at start. Default: none.
func OnFailure[T, F any](failure *Topic[F], build func(ev Event[T], cause error) F) SubscribeOption {
	c := &compensation{topic: failure, evType: reflect.TypeFor[T]()}
	c.publish = func(ctx context.Context, ev any, cause error) error {
		e, ok := ev.(Event[T])
		if !ok {
			return fmt.Errorf("troupe: OnFailure for %s takes Event[%s], got %T", failure.Type(), c.evType, ev)
		}
		return Publish(ctx, failure, build(e, cause))
	}
	return func(cfg *subscribeConfig) { cfg.compensate = c }
}

// compensation is a subscription's declared failure event.
type compensation struct {
	topic   AnyTopic
	evType  reflect.Type // the T of the Event[T] that build takes
	publish func(ctx context.Context, ev any, cause error) error
}
