package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// link is one AMQP connection that comes back after it was lost. The
// transport has two: one for publishing and one for consuming, as RabbitMQ
// advises, so that a publisher the broker slows down (flow control, memory
// alarm) never holds up the acks of consumers.
//
// A lost connection is dialled again in the background, with a backoff, until
// the transport closes. Channels are not carried over: whoever used one opens
// a new one on the new connection, so a delivery tag is only ever acked on
// the channel it came from, and an ack for a message the broker already took
// back after the loss fails instead of settling another message.
type link struct {
	t    *Transport
	role string // "publish" or "consume", for logs and the connection name

	mu      sync.Mutex
	conn    *amqp.Connection // nil while reconnecting
	raw     net.Conn         // conn's socket, for Kill
	ready   chan struct{}    // closed once conn is set
	lastErr error            // why the last dial failed
	stopped bool
	stop    chan struct{} // closed by close and kill

	// onUp runs after each reconnect, before the connection is handed out.
	onUp func(ctx context.Context, conn *amqp.Connection) error
}

func newLink(t *Transport, role string) *link {
	return &link{t: t, role: role, ready: make(chan struct{}), stop: make(chan struct{})}
}

// dial opens one connection. The socket is kept for kill.
func (l *link) dial(ctx context.Context) (*amqp.Connection, net.Conn, error) {
	var raw net.Conn
	cfg := amqp.Config{
		Heartbeat: l.t.cfg.Heartbeat,
		Locale:    "en_US",
		Properties: amqp.Table{
			"connection_name": "troupe " + l.t.cfg.Namespace + " " + l.role,
			"product":         "troupe",
		},
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: 30 * time.Second}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bound the handshake, as amqp091's own dialer does; the client
			// clears the deadline once the connection is open.
			if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
				c.Close()
				return nil, err
			}
			raw = c
			return c, nil
		},
	}
	conn, err := amqp.DialConfig(l.t.url, cfg)
	if err != nil {
		return nil, nil, err
	}
	return conn, raw, nil
}

// connect dials the first connection, failing at once if the broker does not
// answer.
func (l *link) connect(ctx context.Context) error {
	conn, raw, err := l.dial(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmq: connect to %s: %w (is RabbitMQ running, and are the user and vhost right?)",
			redact(l.t.url), err)
	}
	l.up(conn, raw)
	return nil
}

// up hands out a new connection and watches it.
func (l *link) up(conn *amqp.Connection, raw net.Conn) {
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		conn.Close()
		return
	}
	l.conn, l.raw, l.lastErr = conn, raw, nil
	close(l.ready)
	l.mu.Unlock()
	go l.watch(conn, closed)
}

// watch waits for the connection to end and, unless the transport closed
// it, reconnects.
func (l *link) watch(conn *amqp.Connection, closed <-chan *amqp.Error) {
	var cause error
	select {
	case e := <-closed:
		if e != nil {
			cause = e
		}
	case <-l.stop:
		return
	}
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	if l.conn == conn {
		l.conn, l.raw = nil, nil
		l.ready = make(chan struct{})
	}
	l.mu.Unlock()
	l.t.log.Warn("troupe: lost connection to RabbitMQ; reconnecting",
		"namespace", l.t.cfg.Namespace, "connection", l.role, "err", cause)
	l.redial()
}

// redial reconnects with a backoff until it succeeds or the transport closes.
func (l *link) redial() {
	wait := 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for attempt := 1; ; attempt++ {
		select {
		case <-time.After(wait):
		case <-l.stop:
			return
		}
		wait = min(2*wait, l.t.cfg.ReconnectDelay)
		conn, raw, err := l.dial(ctx)
		if err == nil && l.onUp != nil {
			if err = l.onUp(ctx, conn); err != nil {
				conn.Close()
			}
		}
		if err != nil {
			l.mu.Lock()
			l.lastErr = err
			l.mu.Unlock()
			if attempt%10 == 1 {
				l.t.log.Warn("troupe: cannot reconnect to RabbitMQ yet", "namespace", l.t.cfg.Namespace,
					"connection", l.role, "url", redact(l.t.url), "attempt", attempt, "err", err)
			}
			continue
		}
		l.t.log.Info("troupe: reconnected to RabbitMQ", "namespace", l.t.cfg.Namespace, "connection", l.role)
		l.up(conn, raw)
		return
	}
}

// get returns the live connection, waiting for a reconnect while there is
// none, until ctx ends or the transport closes.
func (l *link) get(ctx context.Context) (*amqp.Connection, error) {
	for {
		l.mu.Lock()
		if l.stopped {
			l.mu.Unlock()
			return nil, fmt.Errorf("rabbitmq: %w", transport.ErrClosed)
		}
		conn, ready, lastErr := l.conn, l.ready, l.lastErr
		l.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		if conn != nil {
			// Closed but not yet noticed by watch; it will replace ready.
			select {
			case <-time.After(10 * time.Millisecond):
				continue
			case <-ctx.Done():
			}
		} else {
			select {
			case <-ready:
				continue
			case <-l.stop:
				continue
			case <-ctx.Done():
			}
		}
		if lastErr != nil {
			return nil, fmt.Errorf("rabbitmq: waiting for the connection to come back: %w (last attempt: %v)", ctx.Err(), lastErr)
		}
		return nil, fmt.Errorf("rabbitmq: waiting for the connection to come back: %w", ctx.Err())
	}
}

// channel opens a channel on the live connection.
func (l *link) channel(ctx context.Context) (*amqp.Channel, error) {
	for {
		conn, err := l.get(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			return ch, nil
		}
		if !conn.IsClosed() && !errors.Is(err, amqp.ErrClosed) {
			return nil, fmt.Errorf("rabbitmq: open channel: %w", err)
		}
		// The connection went away under us: wait for the next one.
	}
}

// close stops reconnecting and closes the connection politely, or drops
// it if the broker has not answered when ctx ends.
func (l *link) close(ctx context.Context) error {
	conn := l.halt()
	if conn == nil || conn.IsClosed() {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- conn.Close() }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("rabbitmq: close %s connection: %w", l.role, err)
		}
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		raw := l.raw
		l.mu.Unlock()
		if raw != nil {
			raw.Close()
		}
		return fmt.Errorf("rabbitmq: close %s connection: %w", l.role, ctx.Err())
	}
}

// kill stops reconnecting and drops the socket without a word to the
// broker, as a killed process would.
func (l *link) kill() {
	l.mu.Lock()
	raw := l.raw
	l.mu.Unlock()
	l.halt()
	if raw != nil {
		raw.Close()
	}
}

func (l *link) halt() *amqp.Connection {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.stopped = true
		close(l.stop)
	}
	return l.conn
}

// drop closes the socket but keeps reconnecting: a lost connection, for
// tests.
func (l *link) drop() {
	l.mu.Lock()
	raw := l.raw
	l.mu.Unlock()
	if raw != nil {
		raw.Close()
	}
}
