package natsjs

import (
	"bytes"
	"errors"
	"io"
	"net"
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
