package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// confirmWindow is the most messages one channel has in flight before it
// waits for their confirms. Returned messages come back on a buffered Go
// channel of this size, so within one window none can be lost for want of
// room; see send.
const confirmWindow = 256

// outgoing is one message to publish.
type outgoing struct {
	exchange, key string
	mandatory     bool
	msg           amqp.Publishing
}

// pubChannel is a channel in confirm mode, used by one send at a time.
type pubChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	closed  chan *amqp.Error
}

// pool hands out publishing channels on the publish connection.
type pool struct {
	l    *link
	sem  chan struct{} // one token per channel in use or idle
	mu   sync.Mutex
	idle []*pubChannel
}

func newPool(l *link, size int) *pool {
	return &pool{l: l, sem: make(chan struct{}, size)}
}

// get returns an idle channel or opens one, waiting while all are in use.
func (p *pool) get(ctx context.Context) (*pubChannel, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("rabbitmq: waiting for a publishing channel: %w", ctx.Err())
	}
	p.mu.Lock()
	for len(p.idle) > 0 {
		pc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !pc.ch.IsClosed() {
			p.mu.Unlock()
			return pc, nil
		}
	}
	p.mu.Unlock()
	pc, err := p.open(ctx)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return pc, nil
}

func (p *pool) open(ctx context.Context) (*pubChannel, error) {
	ch, err := p.l.channel(ctx)
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("rabbitmq: put channel in confirm mode: %w", err)
	}
	return &pubChannel{
		ch:      ch,
		returns: ch.NotifyReturn(make(chan amqp.Return, confirmWindow)),
		closed:  ch.NotifyClose(make(chan *amqp.Error, 1)),
	}, nil
}

// put returns a channel for reuse, or closes it if it may hold state of the
// last send (confirms or returns still to come).
func (p *pool) put(pc *pubChannel, clean bool) {
	if clean && !pc.ch.IsClosed() {
		p.mu.Lock()
		p.idle = append(p.idle, pc)
		p.mu.Unlock()
	} else {
		pc.ch.Close()
	}
	<-p.sem
}

// closeIdle closes every idle channel.
func (p *pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range idle {
		pc.ch.Close()
	}
}

// send publishes msgs on one channel, pipelined: up to confirmWindow
// messages go out before it waits for their confirms, and it returns once
// the broker confirmed every one of them, or with an error. It also returns
// the mandatory messages the broker could not route.
//
// RabbitMQ sends basic.return for an unroutable message before its
// basic.ack, and amqp091 hands the return to the Go channel before it
// processes the ack. So once a message's confirm is in, its return, if any,
// is already in pc.returns or was read while waiting: nothing is missed.
func (t *Transport) send(ctx context.Context, msgs []outgoing) ([]amqp.Return, error) {
	pc, err := t.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	var returned []amqp.Return
	clean := false
	defer func() { t.pool.put(pc, clean) }()
	returns := pc.returns
	drain := func() {
		for {
			select {
			case r, ok := <-returns:
				if !ok {
					returns = nil
					return
				}
				returned = append(returned, r)
			default:
				return
			}
		}
	}
	for start := 0; start < len(msgs); start += confirmWindow {
		window := msgs[start:min(start+confirmWindow, len(msgs))]
		pending := make([]*amqp.DeferredConfirmation, 0, len(window))
		for _, m := range window {
			dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, m.exchange, m.key, m.mandatory, false, m.msg)
			if err != nil {
				return returned, t.channelErr(pc, "publish", err)
			}
			pending = append(pending, dc)
		}
		for _, dc := range pending {
		wait:
			for {
				select {
				case r, ok := <-returns:
					if !ok {
						returns = nil // channel closed: the confirms fail below
						continue
					}
					returned = append(returned, r)
				case <-dc.Done():
					break wait
				case <-ctx.Done():
					return returned, fmt.Errorf("rabbitmq: waiting for the broker to confirm: %w", ctx.Err())
				}
			}
			if !dc.Acked() {
				if pc.ch.IsClosed() {
					return returned, t.channelErr(pc, "confirm", amqp.ErrClosed)
				}
				return returned, errNacked
			}
		}
		drain()
	}
	clean = true
	return returned, nil
}

// channelErr explains why a publishing channel failed, with the broker's
// reason when it closed the channel.
func (t *Transport) channelErr(pc *pubChannel, op string, err error) error {
	select {
	case e, ok := <-pc.closed:
		if ok && e != nil {
			return fmt.Errorf("rabbitmq: %s: channel closed: %w; the message may not have been stored", op, e)
		}
	default:
	}
	if pc.ch.IsClosed() {
		if t.isClosed() {
			return fmt.Errorf("rabbitmq: %s: %w", op, transport.ErrClosed)
		}
		return fmt.Errorf("rabbitmq: %s: connection lost before the broker confirmed; the message may not have been stored: %w", op, err)
	}
	return fmt.Errorf("rabbitmq: %s: %w", op, err)
}

// errNacked reports a publisher confirm that came back negative: the broker
// did not store the message. A quorum queue declared a moment ago does this
// until its replicas have started.
var errNacked = errors.New("rabbitmq: the broker refused to store a message (basic.nack); it was not published")
