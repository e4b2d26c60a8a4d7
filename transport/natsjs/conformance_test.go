package natsjs_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/transport/transporttest"
)

// TestConformanceEmbedded runs the transport conformance suite against the
// embedded server, one server for the whole suite, one namespace per subtest.
func TestConformanceEmbedded(t *testing.T) {
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	raw, err := srv.Conn("transporttest-raw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	transporttest.Run(t, harness(raw, func(t testing.TB, ns string) *natsjs.Transport {
		tr, err := srv.Connect(context.Background(), natsjs.Config{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}))
}

// harness adapts natsjs to the conformance suite; raw is a plain client
// connection used to publish as a foreign client would.
func harness(raw *nats.Conn, open func(t testing.TB, ns string) *natsjs.Transport) transporttest.Harness {
	return transporttest.Harness{
		Open: func(t testing.TB, ns string) transport.Transport {
			tr := open(t, ns)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = tr.Close(ctx)
			})
			return tr
		},
		PublishRaw: func(t testing.TB, ns, topic string, headers map[string]string, body []byte) {
			js, err := jetstream.New(raw)
			if err != nil {
				t.Fatal(err)
			}
			m := &nats.Msg{Subject: "troupe." + ns + ".e." + topic + ".v1", Data: body, Header: nats.Header{}}
			for k, v := range headers {
				m.Header.Set(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatalf("raw publish: %v", err)
			}
		},
		Kill: func(t testing.TB, tr transport.Transport) {
			tr.(*natsjs.Transport).Kill()
		},
		// The dead-letter stream stops taking the namespace's dead letters
		// when its subjects no longer cover them.
		BreakDeadLetters: func(t testing.TB, ns string, _ transport.SubscriptionRef) func() {
			js, err := jetstream.New(raw)
			if err != nil {
				t.Fatal(err)
			}
			update := func(subjects ...string) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := js.Stream(ctx, "TROUPE_"+ns+"_DLQ")
				if err != nil {
					t.Fatalf("dead-letter stream: %v", err)
				}
				cfg := s.CachedInfo().Config
				cfg.Subjects = subjects
				if _, err := js.UpdateStream(ctx, cfg); err != nil {
					t.Fatalf("update the dead-letter stream: %v", err)
				}
			}
			update("troupe." + ns + ".broken-dlq.>")
			return func() { update("troupe." + ns + ".d.>") }
		},
		Features: transporttest.Features{Ordered: true, History: true, Tap: true, Lag: true, Journal: true},
	}
}

// TestConformanceExternal runs the suite against the NATS server given by
// TROUPE_TEST_NATS (default nats://127.0.0.1:4222). It skips when no server
// answers, except in CI, where the server must be there.
func TestConformanceExternal(t *testing.T) {
	url := os.Getenv("TROUPE_TEST_NATS")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	raw, err := nats.Connect(url)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS server at %s: %v (CI needs it: start it with nats-server -js)", url, err)
		}
		t.Skipf("no NATS server at %s (%v); start one with nats-server -js or set TROUPE_TEST_NATS", url, err)
	}
	t.Cleanup(raw.Close)
	transporttest.Run(t, harness(raw, func(t testing.TB, ns string) *natsjs.Transport {
		tr, err := natsjs.Connect(context.Background(), url, natsjs.Config{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteNamespace(raw, ns) })
		return tr
	}))
}

// deleteNamespace removes the streams of a test namespace from a shared server.
func deleteNamespace(nc *nats.Conn, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = natsjs.DeleteNamespace(ctx, nc, ns)
}
