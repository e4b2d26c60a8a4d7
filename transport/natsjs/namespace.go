package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// DeleteNamespace deletes from the server every stream of a troupe
// namespace (each topic's events, replays, dead letters, the journal) and
// its lock bucket, with their consumers: what every process of the app
// stored there is gone. A stream is the namespace's when all its subjects
// are under troupe.<namespace>.; one that also stores other subjects is
// left alone. It is for tests and for retiring an app; stop the
// namespace's processes first. A namespace with nothing on the server is
// not an error.
func DeleteNamespace(ctx context.Context, nc *nats.Conn, namespace string) error {
	if !transport.ValidName(namespace) {
		return fmt.Errorf("natsjs: namespace %q: use a letter followed by letters, digits, '_' or '-'", namespace)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("natsjs: %w", err)
	}
	// Every stream whose subjects all lie in the namespace, whatever its
	// name; one that also stores other subjects (an operator's archive of
	// several apps, say) is not the namespace's to delete.
	prefix := "troupe." + namespace + "."
	var streams []string
	l := js.ListStreams(ctx, jetstream.WithStreamListSubject(prefix+">"))
	for info := range l.Info() {
		ours := len(info.Config.Subjects) > 0
		for _, subj := range info.Config.Subjects {
			ours = ours && strings.HasPrefix(subj, prefix)
		}
		if ours {
			streams = append(streams, info.Config.Name)
		}
	}
	if err := l.Err(); err != nil {
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
