package troupe_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// Stopping the app (as SIGINT or SIGTERM does through Main) lets a running
// handler finish and acknowledges its event before the process exits, so
// nothing is handled again after a restart.
func TestStopDrainsRunningHandlers(t *testing.T) {
	dir := t.TempDir()
	a := troupe.New(troupe.Config{Name: "drain", DataDir: dir, HTTPAddr: "off", Logger: quietLogger()})
	a.Service("orders").Publishes(testOrderPlaced)
	started, release, finished := make(chan struct{}), make(chan struct{}), make(chan struct{})
	troupe.Subscribe(a.Service("payment"), testOrderPlaced, "charge",
		func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
			close(started)
			<-release
			close(finished)
			return nil
		})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.RunCommand(ctx, nil, io.Discard) }()
	waitFor(t, 30*time.Second, "the app to start", func() bool { return a.Transport() != nil })
	if err := troupe.Publish(a.Context(context.Background()), testOrderPlaced, orderPlaced{OrderID: "1"}); err != nil {
		t.Fatal(err)
	}
	<-started
	stop() // what SIGTERM does in Main
	select {
	case err := <-ran:
		t.Fatalf("the app stopped (%v) while a handler was still running", err)
	case <-time.After(100 * time.Millisecond):
		// Still draining, as it should. (Bounded wait to show the absence
		// of an early return.)
	}
	close(release)
	<-finished
	if err := <-ran; err != nil {
		t.Fatalf("RunCommand: %v", err)
	}

	// Look at the subscription's state on disk: nothing pending, nothing
	// waiting for an ack.
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Conn("check")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.Consumer(cctx, "TROUPE_drain_EVENTS@order_placed", "payment@charge")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != 1 {
		t.Fatalf("after the drain: %d waiting for ack, %d pending, ack floor %d; want 0, 0, 1",
			info.NumAckPending, info.NumPending, info.AckFloor.Stream)
	}
}

// A client that opened a connection and sent nothing (browsers and pooling
// clients do) does not hold up Stop: net/http alone would wait five seconds
// for it.
func TestStopDoesNotWaitForSilentHTTPClients(t *testing.T) {
	a := troupe.New(troupe.Config{Name: "silent", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Logger: quietLogger()})
	a.Service("web").HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hi")) })
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", a.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The server sees the connection once it is accepted; a request on
	// another connection proves the accept loop has run past it.
	resp, err := http.Get("http://" + a.HTTPAddr() + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("Stop with a silent client connected: %v", err)
	}
}
