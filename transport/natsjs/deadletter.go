package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// DeadLetters implements [transport.Transport]. A dead letter's id is its
// sequence number in the namespace's dead-letter stream.
func (t *Transport) DeadLetters(ctx context.Context, sub transport.SubscriptionRef, limit int) ([]transport.DeadLetter, error) {
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	oc, err := t.dead.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{t.n.deadSubject(sub)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: list dead letters of %s: %w", sub.String(), err)
	}
	info, err := oc.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsjs: list dead letters of %s: %w", sub.String(), err)
	}
	pending := int(info.NumPending)
	if limit > 0 {
		pending = min(pending, limit)
	}
	out := make([]transport.DeadLetter, 0, pending)
	for len(out) < pending {
		batch, err := oc.Fetch(min(pending-len(out), 256), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return out, fmt.Errorf("natsjs: list dead letters of %s: %w", sub.String(), err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			out = append(out, decodeDeadLetter(sub, meta.Sequence.Stream, m.Headers(), m.Data()))
			if meta.NumPending == 0 {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, fmt.Errorf("natsjs: list dead letters of %s: %w", sub.String(), err)
		}
		if n == 0 {
			break // messages deleted while we listed
		}
	}
	return out, nil
}

func decodeDeadLetter(sub transport.SubscriptionRef, seq uint64, hdr nats.Header, data []byte) transport.DeadLetter {
	dl := transport.DeadLetter{ID: strconv.FormatUint(seq, 10), Subscription: sub}
	transport.ReadDeadLetterHeaders(hdr.Get, &dl)
	dl.Message, _ = transport.DecodeHeaderMap(hdr, data)
	if dl.Reason == transport.ReasonMalformed {
		dl.Headers = make(map[string][]string, len(hdr))
		for k, vs := range hdr {
			dl.Headers[k] = append([]string(nil), vs...)
		}
	}
	return dl
}

// getDeadLetter loads a dead letter and checks that it belongs to sub.
func (t *Transport) getDeadLetter(ctx context.Context, sub transport.SubscriptionRef, id string) (*jetstream.RawStreamMsg, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("natsjs: dead letter %q of %s: %w", id, sub.String(), transport.ErrNotFound)
	}
	raw, err := t.dead.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && raw.Subject != t.n.deadSubject(sub) {
		return nil, fmt.Errorf("natsjs: dead letter %q of %s: %w", id, sub.String(), transport.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("natsjs: dead letter %q of %s: %w", id, sub.String(), err)
	}
	return raw, nil
}

// Replay implements [transport.Transport]. The message goes to the
// subscription's replay subject, which only that subscription's consumers
// read, with the replay count raised by one; then the dead letter is deleted.
// A crash in between leaves both; replaying the same id again is then
// dropped by the server's deduplication within the dedup window.
func (t *Transport) Replay(ctx context.Context, sub transport.SubscriptionRef, id string) error {
	if t.isClosed() {
		return transport.ErrClosed
	}
	raw, err := t.getDeadLetter(ctx, sub, id)
	if err != nil {
		return err
	}
	hdr := make(nats.Header, len(raw.Header))
	for k, vs := range raw.Header {
		if k == jetstream.MsgIDHeader || len(k) > len(transport.DeadLetterHeaderPrefix) && k[:len(transport.DeadLetterHeaderPrefix)] == transport.DeadLetterHeaderPrefix {
			continue
		}
		hdr[k] = vs
	}
	replays, _ := strconv.Atoi(raw.Header.Get(transport.HeaderReplays))
	hdr.Set(transport.HeaderReplays, strconv.Itoa(replays+1))
	hdr.Set(jetstream.MsgIDHeader, fmt.Sprintf("replay:%s:%d", sub.String(), raw.Sequence))
	_, err = t.js.PublishMsg(ctx, &nats.Msg{Subject: t.n.replaySubject(sub), Header: hdr, Data: raw.Data})
	if err != nil {
		return fmt.Errorf("natsjs: replay dead letter %s of %s: %w", id, sub.String(), err)
	}
	if err := t.dead.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("natsjs: replayed dead letter %s of %s but could not delete it: %w", id, sub.String(), err)
	}
	return nil
}

// Discard implements [transport.Transport].
func (t *Transport) Discard(ctx context.Context, sub transport.SubscriptionRef, id string) error {
	if t.isClosed() {
		return transport.ErrClosed
	}
	raw, err := t.getDeadLetter(ctx, sub, id)
	if err != nil {
		return err
	}
	if err := t.dead.DeleteMsg(ctx, raw.Sequence); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("natsjs: dead letter %s of %s: %w", id, sub.String(), transport.ErrNotFound)
		}
		return fmt.Errorf("natsjs: discard dead letter %s of %s: %w", id, sub.String(), err)
	}
	return nil
}
