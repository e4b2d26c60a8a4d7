package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
)

func closedTestMessages(n int) []*transport.Message {
	msgs := make([]*transport.Message, n)
	for i := range msgs {
		msgs[i] = &transport.Message{ID: fmt.Sprintf("id-%d-%d", time.Now().UnixNano(), i), Source: "/s",
			Type: transport.WireType("t", 1), Data: []byte("{}")}
	}
	return msgs
}

// A publish on a connection its owner closed says ErrClosed, whether or
// not the transport had published before (nats.go reports the closed
// connection in different words on the first publish).
func TestPublishOnAClosedConnectionIsErrClosed(t *testing.T) {
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	for _, warm := range []bool{false, true} {
		nc, err := srv.Conn("caller's")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		tr, err := natsjs.New(ctx, nc, natsjs.Config{Namespace: fmt.Sprintf("closed%v", warm)})
		if err != nil {
			t.Fatal(err)
		}
		if warm {
			if err := tr.Publish(ctx, closedTestMessages(1)...); err != nil {
				t.Fatal(err)
			}
		}
		nc.Close()
		if err := tr.Publish(ctx, closedTestMessages(1)...); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("published before: %v; publish on the closed connection: %v, want ErrClosed", warm, err)
		}
		cancel()
	}
}

// A publish waiting for its confirms when the transport is killed returns
// ErrClosed instead of waiting forever (nats.go fails pending confirms when
// a connection drops, not when it closes). The kill comes at several
// moments of a large batch, since nothing signals "now waiting".
func TestPublishWaitingForConfirmsEndsWhenClosed(t *testing.T) {
	for _, n := range []int{200, 2000} {
		for _, after := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
			t.Run(fmt.Sprintf("%d events, kill after %s", n, after), func(t *testing.T) {
				srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(srv.Shutdown)
				tr, err := srv.Connect(t.Context(), natsjs.Config{Namespace: "gone"})
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				msgs := closedTestMessages(n)
				go func() { done <- tr.Publish(context.Background(), msgs...) }()
				time.Sleep(after) // the moment of the kill is what varies
				tr.Kill()
				select {
				case err := <-done:
					if err != nil && !errors.Is(err, transport.ErrClosed) {
						t.Errorf("publish ended with %v, want nil or ErrClosed", err)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("Publish still waiting 30s after Kill")
				}
			})
		}
	}
}
