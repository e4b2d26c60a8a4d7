package natsjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// DeleteNamespace deletes from the server every stream of a troupe
// namespace (each topic's events, replays, dead letters, the journal) and its lock
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
