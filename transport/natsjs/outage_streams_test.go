package natsjs_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport/natsjs"
)

// During a lost connection, the first publish of a topic the transport
// has not used yet waits for the reconnect, as a publish to a known topic
// does, rather than failing after nats.go's 5-second request timeout.
func TestFirstPublishOfATopicWaitsOutAnOutage(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: dir, Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := natsjs.Connect(t.Context(), "nats://"+addr, natsjs.Config{Namespace: "outage"})
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	if err := tr.Publish(t.Context(), streamsMsg("known", 1)); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	for deadline := time.Now().Add(10 * time.Second); !tr.Conn().IsReconnecting(); {
		if time.Now().After(deadline) {
			t.Fatal("the client did not notice the server was gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	published := make(chan error, 1)
	go func() { published <- tr.Publish(context.Background(), streamsMsg("fresh", 1)) }()
	// Longer than nats.go's default request timeout, so a lookup that
	// gave up with it would have failed by now.
	select {
	case err := <-published:
		t.Fatalf("the publish ended during the outage: %v", err)
	case <-time.After(6 * time.Second):
	}
	srv, err = natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: dir, Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("the first publish of a new topic across an outage: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("the publish did not finish after the server came back")
	}
}
