package natsjs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// Config tunes a transport. The zero value is usable; every field documents
// its default.
type Config struct {
	// Namespace scopes every stream, subject and consumer of the transport, so
	// that several apps (or test runs) share one server without seeing each
	// other's events. Use the app's name. Default "troupe".
	Namespace string
	// Retention is how long published events stay in their topic's stream, for
	// subscriptions declared later with StartAtBeginning and for rebuilding
	// read models. Acknowledged events are not removed earlier. Default 7 days.
	Retention time.Duration
	// DeadLetterRetention is how long dead letters are kept. Default 0: until
	// they are replayed or discarded.
	DeadLetterRetention time.Duration
	// DedupWindow is how long the server remembers event ids to drop a second
	// publish of the same event (a retried handler publishing again). Default
	// 2 minutes.
	DedupWindow time.Duration
	// MaxMessageBytes is the largest event body Publish accepts; a larger one
	// fails with transport.ErrTooLarge. It must not exceed the server's
	// max_payload (1 MiB by default on nats-server). Default 1 MiB.
	MaxMessageBytes int
	// Replicas is the number of copies of each stream in a JetStream cluster.
	// Default 1.
	Replicas int
	// MaxAckPending caps the messages a subscription may have delivered and not
	// yet settled, across all its consumers, including those waiting for a
	// retry. Default 100,000.
	MaxAckPending int
	// Logger receives warnings about deliveries that could not be settled.
	// Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Namespace == "" {
		c.Namespace = "troupe"
	}
	if !transport.ValidName(c.Namespace) {
		return c, fmt.Errorf("natsjs: namespace %q: use a letter followed by letters, digits, '_' or '-'", c.Namespace)
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 2 * time.Minute
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = transport.DefaultMaxMessageBytes
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 100_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// names derives every broker name of one namespace in one place.
type names struct{ ns string }

func (n names) replayStream() string { return "TROUPE_" + n.ns + "_REPLAY" }
func (n names) deadStream() string   { return "TROUPE_" + n.ns + "_DLQ" }

// eventsSubjects matches every event of the namespace, whatever its topic.
func (n names) eventsSubjects() string { return "troupe." + n.ns + ".e.>" }

// eventsPrefix starts every events subject.
func (n names) eventsPrefix() string   { return "troupe." + n.ns + ".e." }
func (n names) replaySubjects() string { return "troupe." + n.ns + ".r.>" }
func (n names) deadSubjects() string   { return "troupe." + n.ns + ".d.>" }

// eventSubject is where events of one topic version are published.
func (n names) eventSubject(topic string, version int) string {
	return fmt.Sprintf("troupe.%s.e.%s.v%d", n.ns, topic, version)
}

// topicFilter matches every version of a topic.
func (n names) topicFilter(topic string) string { return "troupe." + n.ns + ".e." + topic + ".*" }

// replaySubject feeds one subscription only.
func (n names) replaySubject(s transport.SubscriptionRef) string {
	return "troupe." + n.ns + ".r." + s.Service + "." + s.Name
}

func (n names) deadSubject(s transport.SubscriptionRef) string {
	return "troupe." + n.ns + ".d." + s.Service + "." + s.Name
}

// consumerName is the durable consumer of a subscription: "service@name".
// Valid names never hold '@', so two refs never share a consumer; '.' would
// read better but is not allowed in consumer names.
func consumerName(s transport.SubscriptionRef) string { return s.Service + "@" + s.Name }
