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
// write that failed. The writing goroutine runs only while there are bytes
// to write, so a connection its owner drops without Close leaves nothing
// running. Close writes what is buffered (for at most closeDrainTimeout)
// before closing the connection.
type bufferedConn struct {
	net.Conn

	mu      sync.Mutex
	changed sync.Cond // signalled when buf is written, the writer stops, or Close begins or gives up
	buf     []byte    // waiting to be written
	spare   []byte    // the last buffer written, reused next
	writing bool      // the writer goroutine is running
	err     error     // of the last write; no further writes after it
	closing bool
	gaveUp  bool // Close stopped waiting for the writer
}

const (
	maxBuffered       = 4 << 20
	closeDrainTimeout = 5 * time.Second
)

func newBufferedConn(c net.Conn) *bufferedConn {
	b := &bufferedConn{Conn: c}
	b.changed.L = &b.mu
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
	if !b.writing {
		b.writing = true
		go b.writer()
	}
	return len(p), nil
}

// writer writes the buffer until it is empty, swapping it with the spare
// so that Write never appends to the bytes being written.
func (b *bufferedConn) writer() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) > 0 && b.err == nil {
		out := b.buf
		b.buf = b.spare[:0]
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		if err != nil {
			// Part of a protocol operation may have gone out. Close the
			// connection so that its reader fails too and the client
			// reconnects, as it does when a write to a socket fails midway;
			// otherwise the server would wait for the rest of the operation.
			_ = b.Conn.Close()
		}
		b.mu.Lock()
		b.spare = out[:0]
		if cap(out) > maxBuffered {
			b.spare = nil // a burst's oversized buffer is not kept
		}
		if err != nil {
			b.err, b.buf = err, nil
		}
		b.changed.Broadcast()
	}
	b.writing = false
	b.changed.Broadcast()
}

func (b *bufferedConn) Close() error {
	b.mu.Lock()
	b.closing = true
	b.changed.Broadcast()
	if b.writing {
		timer := time.AfterFunc(closeDrainTimeout, func() {
			b.mu.Lock()
			b.gaveUp = true
			b.changed.Broadcast()
			b.mu.Unlock()
		})
		for b.writing && !b.gaveUp {
			b.changed.Wait()
		}
		timer.Stop()
	}
	b.mu.Unlock()
	return b.Conn.Close()
}
