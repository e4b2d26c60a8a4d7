package portal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// errNoHistory is returned by rebuild on a broker that keeps no history.
var errNoHistory = errors.New("the broker keeps no history to rebuild from (RabbitMQ queues forget what they delivered); the new read model fills from new events only")

// build brings a new, empty read model up to date with the broker's
// history (NATS: the embedded broker or an external one; on RabbitMQ it
// logs that it cannot, and the model fills from new events). It runs when the app starts, after the subscriptions are
// declared and before they consume, so every event is either in the
// history it reads or delivered to the live subscriptions afterwards;
// the few that are both are applied once (see view.apply). A model that was
// built before is left alone: its subscriptions resume where they stopped.
func (v *view) build(ctx context.Context, app *troupe.App) error {
	var builtAt string
	err := v.h.DB().QueryRowContext(ctx, "SELECT value FROM portal_view_meta WHERE key = 'built_at'").Scan(&builtAt)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	n, err := v.rebuild(ctx, app)
	if errors.Is(err, errNoHistory) {
		v.log.Warn("portal: cannot rebuild the read model: " + err.Error())
	} else if err != nil {
		return fmt.Errorf("portal: rebuild the read model from history: %w", err)
	} else {
		v.log.Info(fmt.Sprintf("portal: rebuilt the read model %s from %d events of the broker's history", ViewFile, n))
	}
	_, err = v.h.DB().ExecContext(ctx, v.h.Q(`INSERT INTO portal_view_meta (key, value) VALUES ('built_at', ?), ('rebuilt_events', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`), time.Now().UTC().Format(time.RFC3339), strconv.Itoa(n))
	return err
}

// rebuild reads the events of the view's topics from the start of their
// streams on the broker and applies them in order, returning how many it
// read. It needs NATS JetStream (embedded or external), whose streams keep
// every event for their retention (7 days by default); natsjs's
// TopicStream finds each topic's stream, and an ordered consumer, which
// the server forgets when it is done, reads it.
func (v *view) rebuild(ctx context.Context, app *troupe.App) (int, error) {
	tr, ok := app.Transport().(*natsjs.Transport)
	if !ok {
		return 0, errNoHistory
	}
	decoders := make(map[string]ViewSource)
	for _, s := range v.sources {
		decoders[s.topic.Type()] = s
	}
	// One topic after the other, each from its own stream: the model does
	// not depend on the order of events of different topics.
	n := 0
	for _, s := range v.sources {
		stream, err := tr.TopicStream(ctx, s.topic.Name())
		if err != nil {
			return n, fmt.Errorf("events stream of %s: %w", s.topic.Name(), err)
		}
		m, err := v.replayTopic(ctx, stream, tr.TopicSubjects(s.topic.Name()), decoders)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// replayTopic applies the events on subject, from the first, and returns
// how many it read.
func (v *view) replayTopic(ctx context.Context, stream jetstream.Stream, subject string, decoders map[string]ViewSource) (int, error) {
	oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, err
	}
	info, err := oc.Info(ctx)
	if err != nil {
		return 0, err
	}
	pending, n := int(info.NumPending), 0
	for n < pending {
		batch, err := oc.Fetch(min(pending-n, 256), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return n, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			n++
			if err := v.replay(ctx, decoders, m); err != nil {
				return n, err
			}
			if meta, err := m.Metadata(); err == nil && meta.NumPending == 0 {
				return n, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return n, err
		}
		if got == 0 {
			break // the stream dropped events (retention) while we read
		}
	}
	return n, nil
}

// replay applies one event read from the stream.
func (v *view) replay(ctx context.Context, decoders map[string]ViewSource, m jetstream.Msg) error {
	msg, err := transport.DecodeHeaderMap(m.Headers(), m.Data())
	if err != nil {
		v.log.Warn("portal: rebuild skips an unreadable event", "err", err)
		return nil
	}
	src, ok := decoders[msg.Type]
	if !ok {
		v.log.Warn("portal: rebuild skips an event of a version it does not read", "type", msg.Type, "id", msg.ID)
		return nil
	}
	env := troupe.Envelope{ID: msg.ID, Type: msg.Type, Source: msg.Source, Time: msg.Time,
		CorrelationID: msg.CorrelationID, CausationID: msg.CausationID}
	err = src.decode(ctx, v, env, msg.Data)
	if errors.Is(err, errUnreadable) {
		v.log.Warn("portal: rebuild skips an event it cannot read", "err", err)
		return nil
	}
	return err
}
