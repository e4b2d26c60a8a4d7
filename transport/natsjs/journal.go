package natsjs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
)

// The journal is a stream of its own, TROUPE_<ns>_JOURNAL, with one subject
// per business transaction, troupe.<ns>.j.<token>, where the token is the
// correlation id itself when it is a safe subject token and a hash of it
// otherwise. Reading one transaction is then a walk over one subject, which
// the server indexes, however large the journal grows. The correlation id
// also rides in a header, so a hash collision never mixes two transactions.
// A message holds several records of its transaction, packed with
// transport.PackJournal.

var _ transport.Journaler = (*Transport)(nil)

// hdrJournalCorrelation carries the correlation id of a journal message's
// records.
const hdrJournalCorrelation = "Troupe-Correlation"

// journalMessageBytes bounds one journal message; the server's max_payload
// halved bounds it too.
const journalMessageBytes = 256 << 10

func (t *Transport) journalStream() string { return "TROUPE_" + t.cfg.Namespace + "_JOURNAL" }

func (t *Transport) journalSubjects() string { return "troupe." + t.cfg.Namespace + ".j.>" }

func (t *Transport) journalSubject(correlation string) string {
	return "troupe." + t.cfg.Namespace + ".j." + journalToken(correlation)
}

// journalToken maps a correlation id to one subject token: itself when it
// is 1 to 64 letters, digits, '-' or '_' (UUIDs, order ids), else "h-" and
// a hash of it.
func journalToken(correlation string) string {
	safe := len(correlation) > 0 && len(correlation) <= 64
	for i := 0; safe && i < len(correlation); i++ {
		c := correlation[i]
		safe = c|0x20 >= 'a' && c|0x20 <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if safe {
		return correlation
	}
	sum := sha256.Sum256([]byte(correlation))
	return "h-" + hex.EncodeToString(sum[:16])
}

// DeclareJournal implements [transport.Journaler]: it creates or updates
// the journal stream with MaxAge and MaxBytes, discarding the oldest
// records first. Changing the limits of an existing stream is allowed.
func (t *Transport) DeclareJournal(ctx context.Context, cfg transport.JournalConfig) error {
	if t.isClosed() {
		return transport.ErrClosed
	}
	if cfg.MaxAge <= 0 {
		return errors.New("natsjs: journal: MaxAge must be positive")
	}
	maxBytes := cfg.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	_, err := t.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        t.journalStream(),
		Description: "troupe journal of namespace " + t.cfg.Namespace,
		Subjects:    []string{t.journalSubjects()},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    maxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    t.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("natsjs: declare journal stream %s: %w", t.journalStream(), err)
	}
	return nil
}

// AppendJournal implements [transport.Journaler]. The records of one
// correlation id are packed into as few messages as fit (see
// [transport.PackJournal]), one subject each, and all go out pipelined and
// are confirmed together: a busy app's journal costs the server far fewer
// messages than it has records.
func (t *Transport) AppendJournal(ctx context.Context, recs ...transport.JournalRecord) error {
	if t.isClosed() {
		return transport.ErrClosed
	}
	limit := min(journalMessageBytes, int(t.nc.MaxPayload())/2)
	var order []string
	groups := make(map[string][][]transport.JournalRecord)
	size := make(map[string]int)
	for _, r := range recs {
		g, ok := groups[r.Correlation]
		if !ok {
			order = append(order, r.Correlation)
		}
		n := len(r.Correlation) + len(r.Data) + 16
		if len(g) == 0 || size[r.Correlation]+n > limit {
			g = append(g, nil)
			size[r.Correlation] = 0
		}
		g[len(g)-1] = append(g[len(g)-1], r)
		size[r.Correlation] += n
		groups[r.Correlation] = g
	}
	var futures []jetstream.PubAckFuture
	for _, c := range order {
		for _, g := range groups[c] {
			m := &nats.Msg{Subject: t.journalSubject(c), Data: transport.PackJournal(g), Header: nats.Header{hdrJournalCorrelation: []string{c}}}
			f, err := t.js.PublishMsgAsync(m)
			if err != nil {
				return t.journalErr(err)
			}
			futures = append(futures, f)
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return t.journalErr(err)
		case <-ctx.Done():
			return fmt.Errorf("natsjs: journal: waiting for confirm: %w", ctx.Err())
		}
	}
	return nil
}

func (t *Transport) journalErr(err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("natsjs: journal: %w: stream %s is missing", transport.ErrNoJournal, t.journalStream())
	}
	return fmt.Errorf("natsjs: journal: %w", err)
}

// ReadJournal implements [transport.Journaler], walking the
// transaction's subject with direct message gets, one per record. It has
// no use for since: the server indexes subjects.
func (t *Transport) ReadJournal(ctx context.Context, correlation string, _ time.Time, fn func(transport.JournalRecord) error) error {
	if t.isClosed() {
		return transport.ErrClosed
	}
	s, err := t.js.Stream(ctx, t.journalStream())
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("natsjs: %w: stream %s does not exist", transport.ErrNoJournal, t.journalStream())
		}
		return fmt.Errorf("natsjs: journal: %w", err)
	}
	subject := t.journalSubject(correlation)
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("natsjs: journal: read %s: %w", subject, err)
		}
		seq = m.Sequence + 1
		if m.Header.Get(hdrJournalCorrelation) != correlation {
			continue
		}
		if err := transport.UnpackJournal(m.Data, m.Time, func(r transport.JournalRecord) error {
			if r.Correlation != correlation {
				return nil
			}
			return fn(r)
		}); err != nil {
			return err
		}
	}
}

// FollowJournal implements [transport.Journaler] with an ordered consumer,
// which the client recreates after a reconnect, so the tap outlives short
// outages without losing records.
func (t *Transport) FollowJournal(ctx context.Context, correlation string, since time.Time, fn func(transport.JournalRecord)) (transport.Tap, error) {
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	s, err := t.js.Stream(ctx, t.journalStream())
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("natsjs: %w: stream %s does not exist", transport.ErrNoJournal, t.journalStream())
		}
		return nil, fmt.Errorf("natsjs: journal: %w", err)
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	if correlation != "" {
		cfg.FilterSubjects = []string{t.journalSubject(correlation)}
	}
	if !since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		start := since
		cfg.OptStartTime = &start
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("natsjs: journal: follow: %w", err)
	}
	ft := &journalTap{stop: make(chan struct{}), done: make(chan struct{})}
	cc, err := c.Consume(func(m jetstream.Msg) {
		if correlation != "" && m.Headers().Get(hdrJournalCorrelation) != correlation {
			return
		}
		var stored time.Time
		if md, err := m.Metadata(); err == nil {
			stored = md.Timestamp
		}
		_ = transport.UnpackJournal(m.Data(), stored, func(r transport.JournalRecord) error {
			if correlation == "" || r.Correlation == correlation {
				fn(r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: journal: follow: %w", err)
	}
	go func() {
		defer close(ft.done)
		select {
		case <-ctx.Done():
		case <-ft.stop:
		case <-cc.Closed():
		}
		cc.Stop()
		<-cc.Closed()
	}()
	return ft, nil
}

type journalTap struct {
	once sync.Once
	stop chan struct{}
	done chan struct{}
}

// Close implements [transport.Tap].
func (jt *journalTap) Close() error {
	jt.once.Do(func() { close(jt.stop) })
	return nil
}

// Done implements [transport.Tap].
func (jt *journalTap) Done() <-chan struct{} { return jt.done }
