package natsjs

import (
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// inProcess hands nats.go connections to the embedded server whose writes
// do not wait for the server to read them.
//
// The server's in-process connection is a net.Pipe, which has no buffer: a
// write returns only once the server's read loop has taken every byte. nats.go
// writes from its flusher while holding the connection's lock, so while the
// server is busy with what it read last, every Publish and every Ack of the
// process waits on that lock. Measured on the order flow, that lock was where
// the client spent nearly all its waiting, and both cores were not busy. A
// socket would buffer in the kernel; bufferedConn buffers in the process.
type inProcess struct{ ns *server.Server }

func (p inProcess) InProcessConn() (net.Conn, error) {
	c, err := p.ns.InProcessConn()
	if err != nil {
		return nil, err
	}
	return newBufferedConn(c), nil
}

// bufferedConn is a net.Conn whose Write copies into a buffer that a
// goroutine writes to the underlying connection, in order. Write waits only
// when maxBuffered bytes are waiting, and returns the error of an earlier
// write that failed. Close writes what is buffered (for at most
// closeDrainTimeout) before closing the connection.
type bufferedConn struct {
	net.Conn

	mu      sync.Mutex
	changed sync.Cond // signalled when buf gets bytes, is written, or the conn closes
	buf     []byte    // waiting to be written
	spare   []byte    // the buffer being written, reused next
	writing bool
	err     error // of the last write; no further writes after it
	closing bool
	drained chan struct{} // closed when the writer goroutine returns
}

const (
	maxBuffered       = 4 << 20
	closeDrainTimeout = 5 * time.Second
)

func newBufferedConn(c net.Conn) *bufferedConn {
	b := &bufferedConn{Conn: c, drained: make(chan struct{})}
	b.changed.L = &b.mu
	go b.writer()
	return b
}

func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) >= maxBuffered && b.err == nil && !b.closing {
		b.changed.Wait()
	}
	switch {
	case b.err != nil:
		return 0, b.err
	case b.closing:
		return 0, net.ErrClosed
	}
	b.buf = append(b.buf, p...)
	b.changed.Broadcast()
	return len(p), nil
}

func (b *bufferedConn) writer() {
	defer close(b.drained)
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		for len(b.buf) == 0 && !b.closing {
			b.changed.Wait()
		}
		if len(b.buf) == 0 {
			return // closing, everything written
		}
		out := b.buf
		b.buf, b.writing = b.spare[:0], true
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		b.mu.Lock()
		b.spare, b.writing = out[:0], false
		if cap(out) > maxBuffered {
			b.spare = nil // a burst's oversized buffer is not kept
		}
		if err != nil {
			b.err, b.buf = err, nil
		}
		b.changed.Broadcast()
		if err != nil {
			return
		}
	}
}

func (b *bufferedConn) Close() error {
	b.mu.Lock()
	b.closing = true
	b.changed.Broadcast()
	b.mu.Unlock()
	select {
	case <-b.drained:
	case <-time.After(closeDrainTimeout):
	}
	return b.Conn.Close()
}
