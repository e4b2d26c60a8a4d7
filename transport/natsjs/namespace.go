package natsjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// TopicStream returns the stream that stores topic's events, every version
// of it: the namespace's events stream, TROUPE_<namespace>_EVENTS, which
// holds all its topics. Read a topic's history from it with a consumer
// filtered to [Transport.TopicSubjects], for instance to rebuild a read
// model. It fails for an invalid topic name and with [transport.ErrClosed]
// after Close.
func (t *Transport) TopicStream(ctx context.Context, topic string) (jetstream.Stream, error) {
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	if !transport.ValidName(topic) {
		return nil, fmt.Errorf("natsjs: topic name %q: use a letter followed by letters, digits, '_' or '-'", topic)
	}
	return t.events, nil
}

// TopicSubjects returns the subject filter that matches every version of
// topic's events: troupe.<namespace>.e.<topic>.*; version N is published
// to troupe.<namespace>.e.<topic>.vN.
func (t *Transport) TopicSubjects(topic string) string { return t.n.topicFilter(topic) }

// DeleteNamespace deletes from the server every stream of a troupe
// namespace (events, replays, dead letters, the journal) and its lock
// bucket, with their consumers: what every process of the app stored there
// is gone. It is for tests and for retiring an app; stop the namespace's
// processes first. A namespace with nothing on the server is not an error.
func DeleteNamespace(ctx context.Context, nc *nats.Conn, namespace string) error {
	if !transport.ValidName(namespace) {
		return fmt.Errorf("natsjs: namespace %q: use a letter followed by letters, digits, '_' or '-'", namespace)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("natsjs: %w", err)
	}
	// Every stream whose subjects are the namespace's, whatever its name.
	var streams []string
	names := js.StreamNames(ctx, jetstream.WithStreamListSubject("troupe."+namespace+".>"))
	for s := range names.Name() {
		streams = append(streams, s)
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("natsjs: delete namespace %s: list its streams: %w", namespace, err)
	}
	streams = append(streams, "KV_"+locksBucket(namespace))
	var errs []error
	for _, s := range streams {
		if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("natsjs: delete namespace %s: stream %s: %w", namespace, s, err))
		}
	}
	return errors.Join(errs...)
}
