// Package rabbitmq is troupe's RabbitMQ transport, over AMQP 0-9-1 with the
// RabbitMQ team's client, github.com/rabbitmq/amqp091-go. Apps select it with
// a broker URL such as amqp://user:pass@host:5672/vhost.
//
// # Layout on the broker
//
// Each namespace (normally the app's name) owns one durable topic exchange,
// and each subscription (service, name) owns one durable queue Q named
// "<ns>.<service>.<name>", bound to the exchange with "<topic>.*" so that it
// receives every version of its topic. Two subscriptions of a topic are two
// queues on one key (fan-out); every process consuming a subscription reads
// its queue (competing consumers).
//
//	Publish(orders.v2)
//	      |
//	      v   routing key "orders.v2"
//	+----------------+  orders.*  +--------------------------+
//	| troupe.<ns>    |----------->| <ns>.billing.charge  (Q) |--> handlers of billing.charge
//	| topic exchange |            +--------------------------+
//	|                |  orders.*  +--------------------------+
//	|                |----------->| <ns>.shipping.ship       |--> handlers of shipping.ship
//	+----------------+            +--------------------------+
//
// Each subscription queue Q has a dead-letter queue and, created when first
// needed, one retry queue per delay bucket (see [Config.RetryDelays]). No one
// consumes the retry queues: a retry waits there until its per-message TTL
// (the AMQP expiration property) runs out, and the broker then dead-letters it
// through the default exchange with routing key Q, that is back to Q and to
// no other subscription. Replays of dead letters take the same way.
//
//	                    handler failed: copy with troupe-attempt+1 and
//	                    expiration = backoff, confirmed, then original acked
//	          +---------------------------------------------------+
//	          |                                                   v
//	+-------------------+  expired: dead-lettered via ""  +---------------------+
//	| Q                 |<--------------------------------| Q.retry.<ms>ms      |
//	| <ns>.<svc>.<name> |     (routing key Q)             | one per delay bucket|
//	+-------------------+                                 +---------------------+
//	    |          ^
//	    |          | Replay: published via "" with routing key Q,
//	    |          | troupe-replays+1, attempt reset
//	    v          |
//	+-------------------+
//	| Q.dlq             |  last attempt, permanent error, malformed,
//	+-------------------+  oversized, abandoned; with troupe-dl-* headers
//
// Queues are quorum queues unless [Config.QueueType] says classic. Events
// travel as CloudEvents in binary content mode: every attribute is a header
// named as on every troupe transport (ce-id, ce-type, ce-source, ...), the
// data content type is also the AMQP content-type property, the event id the
// message id, and the data the body. Any AMQP client can read and write them.
//
// # Delivery
//
// Publish uses publisher confirms on channels in confirm mode, many messages
// in flight at once, and the mandatory flag so that the broker reports an
// event no subscription receives ([Config.Unroutable]).
//
// Consumers use manual acks and a prefetch (basic.qos) of the
// subscription's Concurrency+Prefetch. RabbitMQ has no lease to renew: an
// unacked message stays with its consumer for as long as the consumer's
// connection lives, however long the handler runs, and goes back to the
// queue for another consumer as soon as the connection drops, so
// [transport.Subscription.Lease] is not used. The one limit is the broker's
// consumer_timeout (30 minutes by default), after which it closes the
// channel of a consumer that holds an unacked message; handlers that run
// longer need it raised in rabbitmq.conf.
//
// A failed attempt is retried by the broker: the consumer publishes a copy
// of the message to the retry queue of the delay's bucket, with the attempt
// number in the troupe-attempt header, waits for the confirm, and only then
// acks the original, so a crash in between leaves a duplicate, never a loss.
// Attempt numbers add the broker's redeliveries after a consumer died
// holding the message (x-delivery-count of quorum queues, the redelivered
// flag of classic ones), so a message whose consumer died during its last
// attempt is dead-lettered with reason abandoned instead of being handled
// once more than allowed. A consumer that stops hands the messages it had
// fetched but not started back by republishing them with their attempt
// number unchanged, as basic.nack would count them as redelivered.
//
// Dead letters are messages in the subscription's dead-letter queue with
// troupe-dl-* headers (id, reason, error, attempts, times); a dead letter's
// ID is its troupe-dl-id header, given when it was stored. AMQP has no way
// to read a queue without taking its messages, so listing, replaying and
// discarding take all of them with basic.get and put back, in one
// basic.nack, every message they do not remove. Each call therefore costs
// one round trip per dead letter in the queue, however small its limit.
// Calls on one subscription take turns within a process; while one process
// holds the letters, another listing them sees fewer, and Replay or Discard
// there may report transport.ErrNotFound. On quorum queues, a letter stored
// during a listing may end up ahead of the ones the listing put back.
//
// # Connection loss
//
// The transport keeps two connections, one to publish and one to consume. A
// lost connection is dialled again with a backoff until it comes back; the
// exchange and every declared subscription are declared again, and each
// consumer opens a new channel and consumes again. Messages held during the
// outage go back to their queue on the broker, and their late acks fail
// rather than settle other messages. A Publish during an outage waits for the
// connection until its context ends; one whose confirms were cut off returns
// an error, so no event vanishes silently.
//
// # Server versions
//
// RabbitMQ 3.10 or later: quorum queues need it for message TTL and
// at-least-once dead-lettering of the retry queues. On 4.x, where quorum
// queues drop a message redelivered 20 times by default, a subscription's
// queue dead-letters such a message to its dead-letter queue instead, and
// dead-letter queues allow enough redeliveries for listing them.
//
// # Limits
//
// StartAtBeginning has no effect: a queue receives only what is published
// after it is bound, and an exchange keeps nothing for later queues. A
// subscription declared again with another topic gets a second binding and
// keeps the first; give it a new name instead, or unbind the old topic by
// hand. Queue names are limited to 255 bytes, so namespace, service and
// subscription names together must stay below about 220.
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// dlqDeliveryLimit is the x-delivery-limit of quorum dead-letter queues:
// every listing returns their messages, which quorum queues may count as a
// redelivery, and RabbitMQ 4 drops a message after 20 by default.
const dlqDeliveryLimit = 1 << 30

// Transport is a troupe transport on RabbitMQ. Create it with [Connect].
type Transport struct {
	url      string // never printed; see redact
	cfg      Config
	n        names
	log      *slog.Logger
	pub, con *link
	pool     *pool

	mu          sync.Mutex
	closed      bool
	consumers   map[*consumer]struct{}
	subs        map[string]transport.Subscription // declared, by queue, to declare again after a reconnect
	retryQueues map[string]bool                   // retry queues declared since the last reconnect
	queues      map[string]bool                   // every queue declared, for tests that clean up
	deadLocks   map[string]*sync.Mutex            // one per dead-letter queue: one scan at a time
	warned      map[string]time.Time              // last unroutable warning per event type
	startWarned map[string]bool                   // subscriptions warned about StartAtBeginning
}

var _ transport.Transport = (*Transport)(nil)

// Connect dials RabbitMQ at url (amqp:// or amqps://, as amqp091 takes it,
// e.g. "amqp://guest:guest@127.0.0.1:5672/") and declares the namespace's
// exchange. It fails at once when the broker does not answer; once connected,
// the transport reconnects by itself after the connection is lost. Errors and
// logs never show the URL's password.
func Connect(ctx context.Context, url string, cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkURL(url); err != nil {
		return nil, fmt.Errorf("rabbitmq: broker URL %s: %w (want amqp://user:password@host:5672/vhost)", redact(url), err)
	}
	t := &Transport{
		url: url, cfg: cfg, n: names{cfg.Namespace}, log: cfg.Logger,
		consumers:   make(map[*consumer]struct{}),
		subs:        make(map[string]transport.Subscription),
		retryQueues: make(map[string]bool),
		queues:      make(map[string]bool),
		deadLocks:   make(map[string]*sync.Mutex),
		warned:      make(map[string]time.Time),
		startWarned: make(map[string]bool),
	}
	t.pub, t.con = newLink(t, "publish"), newLink(t, "consume")
	t.pub.onUp = t.redeclare
	t.pool = newPool(t.pub, cfg.PublisherChannels)
	if err := t.pub.connect(ctx); err != nil {
		return nil, err
	}
	if err := t.con.connect(ctx); err != nil {
		t.pub.close(ctx)
		return nil, err
	}
	ch, err := t.pub.channel(ctx)
	if err == nil {
		err = t.declareExchange(ch)
		ch.Close()
	}
	if err != nil {
		t.pub.close(ctx)
		t.con.close(ctx)
		return nil, err
	}
	return t, nil
}

// Declare implements [transport.Transport].
func (t *Transport) Declare(ctx context.Context, subs ...transport.Subscription) error {
	if t.isClosed() {
		return fmt.Errorf("rabbitmq: declare: %w", transport.ErrClosed)
	}
	full := make([]transport.Subscription, len(subs))
	for i, s := range subs {
		full[i] = s.WithDefaults()
		if err := t.validate(full[i]); err != nil {
			return err
		}
	}
	return t.declare(ctx, full...)
}

// validate checks a subscription's names, and that its longest queue name
// fits AMQP's limit of 255 bytes.
func (t *Transport) validate(s transport.Subscription) error {
	if err := s.Validate(); err != nil {
		return err
	}
	longest := t.n.retryQueue(s.SubscriptionRef, t.cfg.RetryDelays[len(t.cfg.RetryDelays)-1])
	if len(longest) > 255 {
		return fmt.Errorf("rabbitmq: subscription %s: queue name %q is %d bytes, AMQP allows 255: use shorter names",
			s.String(), longest, len(longest))
	}
	return nil
}

// declare declares the exchange and the queues and binding of each
// subscription, on one channel.
func (t *Transport) declare(ctx context.Context, subs ...transport.Subscription) error {
	ch, err := t.pub.channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := t.declareExchange(ch); err != nil {
		return err
	}
	for _, s := range subs {
		if err := t.declareSub(ch, s); err != nil {
			return err
		}
	}
	return nil
}

func (t *Transport) declareExchange(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(t.n.exchange(), amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("rabbitmq: declare exchange %s: %w", t.n.exchange(), err)
	}
	return nil
}

// declareSub declares a subscription's queue, its dead-letter queue and its
// binding. Its retry queues come when first needed.
func (t *Transport) declareSub(ch *amqp.Channel, s transport.Subscription) error {
	q, dlq := t.n.queue(s.SubscriptionRef), t.n.deadQueue(s.SubscriptionRef)
	dlqArgs := t.queueArgs()
	if t.cfg.QueueType == Quorum {
		dlqArgs["x-delivery-limit"] = int64(dlqDeliveryLimit)
	}
	if err := t.declareQueue(ch, dlq, dlqArgs); err != nil {
		return err
	}
	// Whatever the broker itself dead-letters (a delivery limit, a TTL or a
	// length limit set by policy) lands in the dead-letter queue, not
	// nowhere.
	args := t.queueArgs()
	args["x-dead-letter-exchange"] = ""
	args["x-dead-letter-routing-key"] = dlq
	if s.Ordered {
		// One consumer at a time gets the queue, in order; the others
		// stand by.
		args["x-single-active-consumer"] = true
	}
	if err := t.declareQueue(ch, q, args); err != nil {
		return err
	}
	if err := ch.QueueBind(q, t.n.binding(s.Topic), t.n.exchange(), false, nil); err != nil {
		return fmt.Errorf("rabbitmq: bind subscription %s to topic %s: %w", s.String(), s.Topic, err)
	}
	t.mu.Lock()
	t.subs[q] = s
	warn := s.StartAtBeginning && !t.startWarned[q]
	t.startWarned[q] = true
	t.mu.Unlock()
	if warn {
		t.log.Warn("troupe: StartAtBeginning has no effect on RabbitMQ: a queue receives only events published after it is bound",
			"subscription", s.String())
	}
	return nil
}

func (t *Transport) queueArgs() amqp.Table {
	return amqp.Table{"x-queue-type": string(t.cfg.QueueType)}
}

func (t *Transport) declareQueue(ch *amqp.Channel, name string, args amqp.Table) error {
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
			return fmt.Errorf("rabbitmq: declare queue %s: %w (it exists with other settings: was it declared with another QueueType, unordered, or by another tool? delete it or match its settings)", name, err)
		}
		return fmt.Errorf("rabbitmq: declare queue %s: %w", name, err)
	}
	t.mu.Lock()
	t.queues[name] = true
	t.mu.Unlock()
	return nil
}

// redeclare runs after the publish connection came back: a broker that lost
// its state (a new node, a reset) gets the topology again before anything is
// published.
func (t *Transport) redeclare(ctx context.Context, conn *amqp.Connection) error {
	t.mu.Lock()
	clear(t.retryQueues)
	subs := make([]transport.Subscription, 0, len(t.subs))
	for _, s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer func() { ch.Close() }()
	if err := t.declareExchange(ch); err != nil {
		return err
	}
	for _, s := range subs {
		if err := t.declareSub(ch, s); err != nil {
			// Not worth failing the reconnect for: the subscription's
			// consumers declare it again and report what is wrong.
			t.log.Warn("troupe: could not declare subscription again after reconnecting", "subscription", s.String(), "err", err)
			ch.Close()
			if ch, err = conn.Channel(); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureRetryQueue declares the retry queue of one delay bucket, once per
// connection.
func (t *Transport) ensureRetryQueue(ctx context.Context, ref transport.SubscriptionRef, bucket time.Duration) (string, error) {
	name := t.n.retryQueue(ref, bucket)
	t.mu.Lock()
	ok := t.retryQueues[name]
	t.mu.Unlock()
	if ok {
		return name, nil
	}
	ch, err := t.pub.channel(ctx)
	if err != nil {
		return "", err
	}
	defer ch.Close()
	args := t.queueArgs()
	args["x-dead-letter-exchange"] = ""
	args["x-dead-letter-routing-key"] = t.n.queue(ref)
	if t.cfg.QueueType == Quorum {
		// The broker moves an expired retry back only once the subscription's
		// queue confirmed it, so a crash in between loses nothing. This
		// strategy needs the overflow behaviour reject-publish.
		args["x-dead-letter-strategy"] = "at-least-once"
		args["x-overflow"] = "reject-publish"
	}
	if err := t.declareQueue(ch, name, args); err != nil {
		return "", err
	}
	t.mu.Lock()
	t.retryQueues[name] = true
	t.mu.Unlock()
	return name, nil
}

// schedule publishes pub so that it reaches the subscription's queue after
// delay: through the retry queue of the smallest bucket that holds the
// delay, expiring there after exactly delay; straight to the queue for no
// delay; and through the largest bucket with a due time in a header for
// delays beyond it, to be parked again on arrival until it is due.
// sendRetrying is send, tried again while the broker nacks: a retry queue
// is declared when a subscription's first retry of that delay needs it,
// and a quorum queue refuses messages for a moment after its declaration.
// It gives up after about two seconds. Send one message at a time through
// it: a batch that was partly stored would be stored twice.
func (t *Transport) sendRetrying(ctx context.Context, out []outgoing) ([]amqp.Return, error) {
	wait := 5 * time.Millisecond
	for try := 0; ; try++ {
		returned, err := t.send(ctx, out)
		if !errors.Is(err, errNacked) || try == 8 {
			return returned, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return returned, err
		}
		wait *= 2
	}
}

func (t *Transport) schedule(ctx context.Context, ref transport.SubscriptionRef, pub amqp.Publishing, delay time.Duration) error {
	for try := 0; ; try++ {
		key := t.n.queue(ref)
		pub.Expiration = ""
		delete(pub.Headers, hdrDue)
		if delay >= time.Millisecond {
			buckets := t.cfg.RetryDelays
			bucket := buckets[len(buckets)-1]
			for _, b := range buckets {
				if b >= delay {
					bucket = b
					break
				}
			}
			wait := delay
			if delay > bucket {
				wait = bucket
				// Rounded up, so that the retry never comes early.
				pub.Headers[hdrDue] = (time.Now().Add(delay).UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
			}
			var err error
			if key, err = t.ensureRetryQueue(ctx, ref, bucket); err != nil {
				return err
			}
			pub.Expiration = strconv.FormatInt(int64((wait+time.Millisecond-1)/time.Millisecond), 10)
		}
		returned, err := t.sendRetrying(ctx, []outgoing{{key: key, mandatory: true, msg: pub}})
		if err != nil {
			return err
		}
		if len(returned) == 0 {
			return nil
		}
		// The queue is gone, deleted behind our back: declare it again, once.
		if try > 0 {
			return fmt.Errorf("rabbitmq: queue %s does not exist: %s", key, returned[0].ReplyText)
		}
		t.mu.Lock()
		delete(t.retryQueues, key)
		s, ok := t.subs[t.n.queue(ref)]
		t.mu.Unlock()
		if ok {
			if err := t.declare(ctx, s); err != nil {
				return err
			}
		}
	}
}

// Publish implements [transport.Transport]. The messages go out pipelined
// on one channel and are confirmed together.
func (t *Transport) Publish(ctx context.Context, msgs ...*transport.Message) error {
	if t.isClosed() {
		return fmt.Errorf("rabbitmq: publish: %w", transport.ErrClosed)
	}
	out := make([]outgoing, len(msgs))
	for i, m := range msgs {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("rabbitmq: publish: %w", err)
		}
		if len(m.Data) > t.cfg.MaxMessageBytes {
			return fmt.Errorf("rabbitmq: publish %s: %w: %d bytes, limit %d", m.Type, transport.ErrTooLarge, len(m.Data), t.cfg.MaxMessageBytes)
		}
		out[i] = outgoing{
			exchange:  t.n.exchange(),
			key:       m.Type,
			mandatory: t.cfg.Unroutable != UnroutableIgnore,
			msg:       encode(m),
		}
	}
	if len(out) == 0 {
		return nil
	}
	returned, err := t.send(ctx, out)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range returned {
		if r.ReplyCode != amqp.NoRoute {
			errs = append(errs, fmt.Errorf("rabbitmq: publish %s (id %s): returned by the broker: %d %s", r.RoutingKey, r.MessageId, r.ReplyCode, r.ReplyText))
			continue
		}
		switch t.cfg.Unroutable {
		case UnroutableError:
			errs = append(errs, fmt.Errorf("rabbitmq: publish %s (id %s): %w", r.RoutingKey, r.MessageId, ErrUnroutable))
		case UnroutableWarn:
			t.warnUnroutable(r.RoutingKey)
		}
	}
	return errors.Join(errs...)
}

// warnUnroutable logs an event type without subscribers, at most once a
// minute per type.
func (t *Transport) warnUnroutable(typ string) {
	now := time.Now()
	t.mu.Lock()
	last, seen := t.warned[typ]
	if !seen || now.Sub(last) >= time.Minute {
		t.warned[typ] = now
	}
	t.mu.Unlock()
	if !seen || now.Sub(last) >= time.Minute {
		t.log.Warn("troupe: no subscription receives this event type; events of it are dropped (logged once a minute)",
			"namespace", t.cfg.Namespace, "type", typ)
	}
}

// Close implements [transport.Transport].
func (t *Transport) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cs := make([]*consumer, 0, len(t.consumers))
	for c := range t.consumers {
		cs = append(cs, c)
	}
	t.mu.Unlock()
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { errs[i] = c.Stop(ctx) })
	}
	wg.Wait()
	t.pool.closeIdle()
	errs = append(errs, t.pub.close(ctx), t.con.close(ctx))
	return errors.Join(errs...)
}

// Kill drops both connections at once without settling anything, as a
// process killed with SIGKILL would: the broker hands every unacked message
// to other consumers. The transport is closed afterwards. It exists for
// tests of redelivery.
func (t *Transport) Kill() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.pub.kill()
	t.con.kill()
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// checkURL reports what keeps amqp091 from dialling raw, without repeating
// raw (its parse errors quote the whole URL, password included).
func checkURL(raw string) error {
	if _, err := neturl.Parse(raw); err != nil {
		var uerr *neturl.Error
		if errors.As(err, &uerr) {
			return uerr.Err
		}
		return errors.New("cannot parse it")
	}
	_, err := amqp.ParseURI(raw)
	return err
}

// redact hides the password of a URL for errors and logs.
func redact(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Queues returns the queues this transport has declared (subscriptions,
// their dead-letter and retry queues), sorted. Tools that tear a namespace
// down delete them, and the exchange "troupe.<namespace>", once the apps
// using them have stopped.
func (t *Transport) Queues() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.queues))
	for q := range t.queues {
		out = append(out, q)
	}
	slices.Sort(out)
	return out
}
