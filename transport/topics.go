package transport

import "context"

// TopicDeclarer is implemented by transports that keep something of their
// own on the broker for each topic (a stream per topic on NATS JetStream).
// An app declares every topic it knows when it starts, before its
// subscriptions, so that the broker is ready to store a topic's events
// before the first publish, whoever publishes it. It is optional: a
// transport without it makes what a topic needs when the topic is first
// used, or needs nothing.
type TopicDeclarer interface {
	// DeclareTopics makes sure the broker can store the events of each
	// topic (topic names, every version). It is idempotent and safe for
	// concurrent use. It fails for an invalid topic name, with [ErrClosed]
	// after Close, and with the broker's error.
	DeclareTopics(ctx context.Context, topics ...string) error
}
