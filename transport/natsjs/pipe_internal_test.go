package natsjs

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Writes return before the other end reads, arrive whole and in order, and
// Close delivers what is still buffered.
func TestBufferedConnWritesInOrderWithoutWaitingForTheReader(t *testing.T) {
	client, server := net.Pipe()
	b := newBufferedConn(client)
	var want bytes.Buffer
	for i := range 1000 {
		p := bytes.Repeat([]byte{byte(i)}, 1+i%300)
		want.Write(p)
		// Nobody reads yet: on a bare net.Pipe the first Write would block.
		if n, err := b.Write(p); err != nil || n != len(p) {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(server)
		got <- all
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case all := <-got:
		if !bytes.Equal(all, want.Bytes()) {
			t.Fatalf("read %d bytes, wrote %d (or out of order)", len(all), want.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not see the end")
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// After the writer has sent a buffer larger than maxBuffered (which it does
// not keep), the buffer it hands to Write next must not be the one it is
// sending. The reader is driven step by step so that the writer is caught
// sending exactly when a new write arrives.
func TestBufferedConnNeverWritesIntoTheBufferBeingSent(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	b := newBufferedConn(client)
	defer b.Close()
	var want bytes.Buffer
	write := func(n int, fill byte) {
		t.Helper()
		p := bytes.Repeat([]byte{fill}, n)
		want.Write(p)
		if _, err := b.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	read := func(n int) {
		t.Helper()
		if _, err := io.ReadFull(server, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	// sending waits until the writer has taken everything buffered.
	sending := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			b.mu.Lock()
			taken := b.writing && len(b.buf) == 0
			b.mu.Unlock()
			if taken {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the writer did not take the buffer")
			}
			time.Sleep(time.Millisecond)
		}
	}
	const chunk = 64 << 10
	write(1<<20, 'a') // buffer A, 1 MiB: being sent, nobody reads yet
	sending()
	big := 0
	for big+chunk < maxBuffered {
		write(chunk, 'b')
		big += chunk
	}
	write(2*chunk, 'b') // buffer B now holds more than maxBuffered
	big += 2 * chunk
	read(1 << 20) // A sent; the writer keeps A as spare and sends B
	sending()
	write(chunk, 'c') // into A
	write(chunk, 'd')
	read(big) // B sent (and dropped); the writer sends A's c and d
	sending()
	write(chunk, 'e') // must not land in A while A is being sent
	got := make([]byte, 3*chunk)
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if tail := want.Bytes()[want.Len()-3*chunk:]; !bytes.Equal(got, tail) {
		t.Fatalf("read back %q… where %q… was written", got[:8], tail[:8])
	}
}

// A full buffer makes Write wait for the reader instead of growing.
func TestBufferedConnBackpressure(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	b := newBufferedConn(client)
	defer b.Close()
	chunk := make([]byte, 64<<10)
	var written sync.WaitGroup
	blocked := make(chan struct{})
	written.Go(func() {
		// The writer goroutine holds one buffer in a pipe write that nobody
		// reads; the second fills up to maxBuffered, and then Write waits.
		for range 2*maxBuffered/len(chunk) + 2 {
			if _, err := b.Write(chunk); err != nil {
				t.Error(err)
				return
			}
		}
		close(blocked)
	})
	select {
	case <-blocked:
		t.Fatal("Write buffered more than twice maxBuffered without a reader")
	case <-time.After(200 * time.Millisecond): // a bounded wait for something that must not happen
	}
	go func() { _, _ = io.Copy(io.Discard, server) }()
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("Write still blocked after the reader started")
	}
	written.Wait()
}

// When the other end goes away, the next Write reports it.
func TestBufferedConnReportsAFailedWrite(t *testing.T) {
	client, server := net.Pipe()
	b := newBufferedConn(client)
	defer b.Close()
	server.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := b.Write([]byte("ping"))
		if err != nil {
			if !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("error %v, want the pipe's", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed pipe kept succeeding")
		}
		time.Sleep(time.Millisecond)
	}
}

// When a write fails (here, a write deadline already past, as nats.go's
// flush timeout would set), the connection is closed for reading too, so
// that the client notices and reconnects instead of leaving the server
// waiting for the rest of an operation.
func TestBufferedConnFailedWriteClosesTheReadSide(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	b := newBufferedConn(client)
	defer b.Close()
	if err := b.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.Write([]byte("PUB x 1\r\nx\r\n")); err != nil {
			break // the writer's failure has been reported
		}
		if time.Now().After(deadline) {
			t.Fatal("writes past the write deadline kept succeeding")
		}
		time.Sleep(time.Millisecond)
	}
	read := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 1))
		read <- err
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("read succeeded on a connection whose write failed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read side stayed open after a failed write")
	}
}

// The writing goroutine stops once everything is written, so a connection
// dropped without Close (as nats.go drops one whose handshake failed)
// leaves nothing running.
func TestBufferedConnWriterStopsWhenIdle(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	b := newBufferedConn(client)
	if _, err := b.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	stacks := make([]byte, 1<<20)
	for {
		n := runtime.Stack(stacks, true)
		if !bytes.Contains(stacks[:n], []byte("(*bufferedConn).writer")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a writer goroutine is still running with nothing to write")
		}
		time.Sleep(time.Millisecond)
	}
}
