package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// The journal is one stream queue, "<ns>.journal" (RabbitMQ 3.9 and
// later): an append-only log that the broker trims by age and size, and
// that any number of readers can read from any offset without taking
// anything from each other. Stream queues cannot be filtered on the broker
// before RabbitMQ 3.13, so a reader of one business transaction reads the
// journal (from its first offset, or from a time the caller knows the
// transaction began) and keeps the records of its correlation id. Records
// are packed many to a message (transport.PackJournal), as readers filter
// anyway. To know where "now" is, a reader first appends a marker message
// of its own and reads up to it.
//
// A queue name with two dot-separated words never collides with the
// transport's other queues, which have three or more.

var _ transport.Journaler = (*Transport)(nil)

const (
	// journalContentType marks messages of packed journal records.
	journalContentType = "application/vnd.troupe.journal"
	// journalMessageBytes bounds one journal message.
	journalMessageBytes = 256 << 10
	// hdrJournalMarker marks a reader's end-of-journal record.
	hdrJournalMarker = "troupe-journal-marker"
	// journalPrefetch bounds the records a reader holds unacknowledged.
	journalPrefetch = 1000
	// journalClockSlack is how far ahead of the broker's clock a reader's
	// clock may run before a read from a time misses its own marker.
	journalClockSlack = 5 * time.Minute
)

func (t *Transport) journalQueue() string { return t.cfg.Namespace + ".journal" }

// DeclareJournal implements [transport.Journaler] with a stream queue:
// x-max-age from MaxAge (whole seconds, rounded up), x-max-length-bytes
// from MaxBytes, and segments of a sixteenth of MaxBytes (1 to 64 MiB;
// 16 MiB without MaxBytes), because RabbitMQ trims a stream a whole
// segment at a time. RabbitMQ cannot change the arguments of an existing
// queue: when the journal exists with other limits, DeclareJournal logs a
// warning and keeps it as it is (change it with a policy, or delete the
// queue to declare it anew).
func (t *Transport) DeclareJournal(ctx context.Context, cfg transport.JournalConfig) error {
	if t.isClosed() {
		return fmt.Errorf("rabbitmq: journal: %w", transport.ErrClosed)
	}
	if cfg.MaxAge <= 0 {
		return errors.New("rabbitmq: journal: MaxAge must be positive")
	}
	ch, err := t.pub.channel(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	_, err = ch.QueueDeclare(t.journalQueue(), true, false, false, false, journalArgs(cfg))
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		if ch, err = t.pub.channel(ctx); err != nil {
			return err
		}
		if _, err = ch.QueueDeclarePassive(t.journalQueue(), true, false, false, false, nil); err == nil {
			t.log.Warn("troupe: the journal queue exists with other settings; keeping them (RabbitMQ cannot change a queue's arguments: use a policy, or delete the queue)",
				"queue", t.journalQueue(), "want_max_age", cfg.MaxAge, "want_max_bytes", cfg.MaxBytes, "broker_says", ae.Reason)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("rabbitmq: declare journal queue %s: %w (stream queues need RabbitMQ 3.9 or later)", t.journalQueue(), err)
	}
	return nil
}

// journalArgs are the stream queue arguments for cfg.
func journalArgs(cfg transport.JournalConfig) amqp.Table {
	secs := int64((cfg.MaxAge + time.Second - 1) / time.Second)
	segment := int64(16 << 20)
	args := amqp.Table{
		"x-queue-type": "stream",
		"x-max-age":    fmt.Sprintf("%ds", secs),
	}
	if cfg.MaxBytes > 0 {
		args["x-max-length-bytes"] = cfg.MaxBytes
		segment = min(max(cfg.MaxBytes/16, 1<<20), 64<<20)
	}
	args["x-stream-max-segment-size-bytes"] = segment
	return args
}

// AppendJournal implements [transport.Journaler]: the records are packed
// (see [transport.PackJournal]) into persistent messages of at most 256 KiB,
// usually one per call, published to the stream through the default
// exchange, pipelined and confirmed together. Readers filter the records
// anyway, so packing costs them nothing and saves the broker a message per
// record. The mandatory flag tells a missing queue apart from a stored
// record.
func (t *Transport) AppendJournal(ctx context.Context, recs ...transport.JournalRecord) error {
	if t.isClosed() {
		return fmt.Errorf("rabbitmq: journal: %w", transport.ErrClosed)
	}
	now := time.Now()
	var out []outgoing
	for start := 0; start < len(recs); {
		end, size := start, 0
		for end < len(recs) && (end == start || size+len(recs[end].Correlation)+len(recs[end].Data)+16 <= journalMessageBytes) {
			size += len(recs[end].Correlation) + len(recs[end].Data) + 16
			end++
		}
		out = append(out, outgoing{key: t.journalQueue(), mandatory: true, msg: amqp.Publishing{
			ContentType:  journalContentType,
			DeliveryMode: amqp.Persistent,
			Timestamp:    now,
			Body:         transport.PackJournal(recs[start:end]),
		}})
		start = end
	}
	if len(out) == 0 {
		return nil
	}
	return t.appendJournal(ctx, out)
}

func (t *Transport) appendJournal(ctx context.Context, out []outgoing) error {
	returned, err := t.send(ctx, out)
	if err != nil {
		return fmt.Errorf("rabbitmq: journal: %w", err)
	}
	if len(returned) > 0 {
		return fmt.Errorf("rabbitmq: journal: %w: queue %s is missing (%s)", transport.ErrNoJournal, t.journalQueue(), returned[0].ReplyText)
	}
	return nil
}

// ReadJournal implements [transport.Journaler]. It reads the journal from
// since (a second earlier, as stream timestamps have whole seconds, and no
// later than five minutes ago, in case the clocks differ), or from its
// first offset when since is zero, up to a marker; see the comment at the
// top of this file.
func (t *Transport) ReadJournal(ctx context.Context, correlation string, since time.Time, fn func(transport.JournalRecord) error) error {
	if t.isClosed() {
		return fmt.Errorf("rabbitmq: journal: %w", transport.ErrClosed)
	}
	marker := uuid.NewString()
	if err := t.appendJournal(ctx, []outgoing{{key: t.journalQueue(), mandatory: true, msg: amqp.Publishing{
		Headers: amqp.Table{hdrJournalMarker: marker}, DeliveryMode: amqp.Persistent, Timestamp: time.Now(),
	}}}); err != nil {
		return err
	}
	var offset any = "first"
	if !since.IsZero() {
		// The stream's timestamps are the broker's clock, and the marker
		// must come after the offset or the read never ends: keep the
		// offset well before now, whatever the clocks say.
		start := since.Add(-time.Second)
		if latest := time.Now().Add(-journalClockSlack); start.After(latest) {
			start = latest
		}
		offset = start
	}
	ch, deliveries, err := t.consumeJournal(ctx, offset)
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	n := 0
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("rabbitmq: journal: read: the channel closed before the end of the journal")
			}
			if n++; n%(journalPrefetch/4) == 0 {
				_ = d.Ack(true)
			}
			if m, _ := headerString(d.Headers[hdrJournalMarker]); m == marker {
				return nil
			}
			if d.ContentType != journalContentType {
				continue
			}
			if err := transport.UnpackJournal(d.Body, d.Timestamp, func(r transport.JournalRecord) error {
				if r.Correlation != correlation {
					return nil
				}
				return fn(r)
			}); err != nil && !errors.Is(err, transport.ErrMalformed) {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("rabbitmq: journal: read: %w", ctx.Err())
		}
	}
}

// consumeJournal opens a channel on the consume connection and consumes
// the journal from offset: "first", "next", or a time.Time.
func (t *Transport) consumeJournal(ctx context.Context, offset any) (*amqp.Channel, <-chan amqp.Delivery, error) {
	ch, err := t.con.channel(ctx)
	if err != nil {
		return nil, nil, err
	}
	fail := func(step string, err error) (*amqp.Channel, <-chan amqp.Delivery, error) {
		_ = ch.Close()
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil, nil, fmt.Errorf("rabbitmq: journal: %w: queue %s does not exist", transport.ErrNoJournal, t.journalQueue())
		}
		return nil, nil, fmt.Errorf("rabbitmq: journal: %s: %w", step, err)
	}
	// Stream queues require a prefetch limit of their consumers.
	if err := ch.Qos(journalPrefetch, 0, false); err != nil {
		return fail("set prefetch", err)
	}
	// Not ConsumeWithContext: its cancel on ctx's end races with the
	// channel's close, and the callers close the channel when ctx ends.
	deliveries, err := ch.Consume(t.journalQueue(), "", false, false, false, false,
		amqp.Table{"x-stream-offset": offset})
	if err != nil {
		return fail("consume", err)
	}
	return ch, deliveries, nil
}

// FollowJournal implements [transport.Journaler] with a stream consumer
// from the next offset, or from since. A lost connection ends the tap
// (Done is closed); follow again from the last record's time to go on.
func (t *Transport) FollowJournal(ctx context.Context, correlation string, since time.Time, fn func(transport.JournalRecord)) (transport.Tap, error) {
	if t.isClosed() {
		return nil, fmt.Errorf("rabbitmq: journal: %w", transport.ErrClosed)
	}
	var offset any = "next"
	if !since.IsZero() {
		// Stream timestamps have whole seconds: start a second early.
		offset = since.Add(-time.Second)
	}
	ch, deliveries, err := t.consumeJournal(ctx, offset)
	if err != nil {
		return nil, err
	}
	tp := &journalTap{ch: ch, done: make(chan struct{})}
	go func() {
		defer close(tp.done)
		defer tp.Close()
		n := 0
		for {
			select {
			case d, ok := <-deliveries:
				if !ok {
					return
				}
				if n++; n%(journalPrefetch/4) == 0 {
					_ = d.Ack(true)
				}
				if d.ContentType != journalContentType {
					continue
				}
				_ = transport.UnpackJournal(d.Body, d.Timestamp, func(r transport.JournalRecord) error {
					if correlation == "" || r.Correlation == correlation {
						fn(r)
					}
					return nil
				})
			case <-ctx.Done():
				return
			}
		}
	}()
	return tp, nil
}

type journalTap struct {
	ch   *amqp.Channel
	once sync.Once
	done chan struct{}
}

// Close implements [transport.Tap].
func (tp *journalTap) Close() error {
	tp.once.Do(func() { _ = tp.ch.Close() })
	return nil
}

// Done implements [transport.Tap].
func (tp *journalTap) Done() <-chan struct{} { return tp.done }
