package rabbitmq

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// QueueType selects the kind of queue that holds a subscription's events, its
// retries and its dead letters.
type QueueType string

// Queue types.
const (
	// Quorum queues are replicated with Raft across a cluster's nodes and
	// count redeliveries (x-delivery-count), which troupe uses for
	// attempt numbers. They need RabbitMQ 3.10 or later for the retry path
	// (message TTL and at-least-once dead-lettering).
	Quorum QueueType = "quorum"
	// Classic queues live on one node. They only flag a redelivery, so a
	// message whose consumers died several times counts as one extra attempt.
	Classic QueueType = "classic"
)

// Unroutable says what Publish does about an event that no queue is bound to
// receive: its topic has no subscription yet.
type Unroutable int

// Ways to treat unroutable events.
const (
	// UnroutableWarn publishes with the mandatory flag and logs a warning
	// (at most once a minute per event type) for each event the broker
	// returns. Publish succeeds: an event nobody subscribes to yet is not an
	// error of the publisher, and the contract lets it publish before any
	// subscription exists. The default.
	UnroutableWarn Unroutable = iota
	// UnroutableError publishes with the mandatory flag and fails Publish
	// with an error wrapping [ErrUnroutable] when the broker returns an event.
	// The other events of the call are stored all the same.
	UnroutableError
	// UnroutableIgnore publishes without the mandatory flag: the broker drops
	// unroutable events silently, and saves the round trip of returning them.
	UnroutableIgnore
)

// ErrUnroutable marks an event that no queue received, with
// [UnroutableError].
var ErrUnroutable = errors.New("no subscription receives this event")

// DefaultRetryDelays are the retry delay buckets used when
// [Config.RetryDelays] is empty. Consecutive buckets differ by at most 3×.
var DefaultRetryDelays = []time.Duration{
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
	30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute,
	15 * time.Minute, 30 * time.Minute, time.Hour,
}

// Config tunes a transport. The zero value is usable; every field documents
// its default.
type Config struct {
	// Namespace scopes the transport's exchange and queues, so that several
	// apps (or test runs) share one virtual host without seeing each other's
	// events. Use the app's name. Default "troupe".
	Namespace string
	// QueueType is the type of every queue the transport declares. Changing
	// it for existing queues fails at Declare: RabbitMQ cannot convert a
	// queue, so delete or drain the old ones first. Default [Quorum].
	QueueType QueueType
	// MaxMessageBytes is the largest event body Publish accepts; a larger one
	// fails with transport.ErrTooLarge. Default 1 MiB
	// (transport.DefaultMaxMessageBytes).
	MaxMessageBytes int
	// Unroutable says what Publish does about an event no subscription
	// receives. Default [UnroutableWarn].
	Unroutable Unroutable
	// RetryDelays are the delay buckets of the retry path, in increasing
	// order. Each bucket a subscription uses becomes one queue
	// "<queue>.retry.<ms>ms", declared the first time it is needed. A retry
	// goes to the smallest bucket not shorter than its delay and expires
	// there after exactly its delay; a message with a shorter delay queued
	// behind a longer one waits for it (RabbitMQ expires messages at the head
	// of a queue only), so a retry may come up to one bucket late but never
	// early. Delays beyond the largest bucket pass through it several times.
	// Default [DefaultRetryDelays].
	RetryDelays []time.Duration
	// PublisherChannels caps the AMQP channels used for publishing at once;
	// each Publish call holds one while it waits for its confirms. Default
	// 16.
	PublisherChannels int
	// Heartbeat is the AMQP heartbeat interval: a connection that stays
	// silent for about two of them counts as lost. Default 10s.
	Heartbeat time.Duration
	// ReconnectDelay is the longest wait between two attempts to reconnect
	// after the connection to the broker was lost; the first retry comes
	// after 100ms, and the wait doubles up to this. Default 5s.
	ReconnectDelay time.Duration
	// Logger receives warnings: lost connections, unroutable events, dead
	// letters, deliveries that could not be settled. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Namespace == "" {
		c.Namespace = "troupe"
	}
	if !transport.ValidName(c.Namespace) {
		return c, fmt.Errorf("rabbitmq: namespace %q: use a letter followed by letters, digits, '_' or '-'", c.Namespace)
	}
	switch c.QueueType {
	case "":
		c.QueueType = Quorum
	case Quorum, Classic:
	default:
		return c, fmt.Errorf("rabbitmq: queue type %q: use rabbitmq.Quorum or rabbitmq.Classic", c.QueueType)
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = transport.DefaultMaxMessageBytes
	}
	if c.Unroutable < UnroutableWarn || c.Unroutable > UnroutableIgnore {
		return c, fmt.Errorf("rabbitmq: Unroutable %d: use UnroutableWarn, UnroutableError or UnroutableIgnore", c.Unroutable)
	}
	if len(c.RetryDelays) == 0 {
		c.RetryDelays = DefaultRetryDelays
	}
	c.RetryDelays = slices.Clone(c.RetryDelays)
	for i, d := range c.RetryDelays {
		if d < time.Millisecond || d%time.Millisecond != 0 {
			return c, fmt.Errorf("rabbitmq: retry delay %s: use whole milliseconds, at least 1ms", d)
		}
		if i > 0 && d <= c.RetryDelays[i-1] {
			return c, fmt.Errorf("rabbitmq: retry delays %v: list them in increasing order", c.RetryDelays)
		}
	}
	if c.PublisherChannels <= 0 {
		c.PublisherChannels = 16
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.ReconnectDelay <= 0 {
		c.ReconnectDelay = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// names derives every broker name of one namespace in one place. Valid
// troupe names hold no '.', so the number of dot-separated words tells the
// kinds apart: a subscription queue has three, its dead-letter queue four and
// its retry queues five.
type names struct{ ns string }

// exchange is the namespace's topic exchange, which every event goes to.
func (n names) exchange() string { return "troupe." + n.ns }

// binding matches every version of a topic: "<topic>.*".
func (n names) binding(topic string) string { return topic + ".*" }

// queue holds a subscription's events: "<ns>.<service>.<name>".
func (n names) queue(s transport.SubscriptionRef) string {
	return n.ns + "." + s.Service + "." + s.Name
}

// deadQueue holds a subscription's dead letters: "<queue>.dlq".
func (n names) deadQueue(s transport.SubscriptionRef) string { return n.queue(s) + ".dlq" }

// retryQueue holds a subscription's retries of one delay bucket:
// "<queue>.retry.<ms>ms".
func (n names) retryQueue(s transport.SubscriptionRef, bucket time.Duration) string {
	return n.queue(s) + ".retry." + strconv.FormatInt(bucket.Milliseconds(), 10) + "ms"
}
