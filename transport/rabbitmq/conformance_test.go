package rabbitmq_test

import (
	"context"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/transport/rabbitmq"
	"github.com/troupe-go/troupe/transport/transporttest"
)

// brokerURL is the RabbitMQ the tests use: TROUPE_TEST_AMQP, default the
// local broker with the guest account.
func brokerURL() string {
	if u := os.Getenv("TROUPE_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// dialRaw connects a plain client to the test broker, skipping the test when
// there is none, except in CI, where the broker must be there.
func dialRaw(t *testing.T) *amqp.Connection {
	t.Helper()
	raw, err := amqp.Dial(brokerURL())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("RabbitMQ at %s: %v (CI needs it: start rabbitmq-server, or set TROUPE_TEST_AMQP)", redacted(), err)
		}
		t.Skipf("no RabbitMQ at %s (%v); start rabbitmq-server or set TROUPE_TEST_AMQP", redacted(), err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// redacted is the broker URL without its password, for messages.
func redacted() string {
	u, err := url.Parse(brokerURL())
	if err != nil {
		return "(unparsable TROUPE_TEST_AMQP)"
	}
	return u.Redacted()
}

// TestConformance runs the transport conformance suite against the local
// RabbitMQ with quorum queues, one namespace per subtest, each deleted
// afterwards.
func TestConformance(t *testing.T) {
	transporttest.Run(t, harness(t, rabbitmq.Config{}))
}

// TestConformanceClassic runs the suite with classic queues, which count
// redeliveries differently.
func TestConformanceClassic(t *testing.T) {
	if testing.Short() {
		t.Skip("the quorum run covers the same code; skipped in -short mode")
	}
	transporttest.Run(t, harness(t, rabbitmq.Config{QueueType: rabbitmq.Classic}))
}

// harness adapts the transport to the conformance suite. Each namespace's
// queues and exchange are deleted once its last transport closed.
func harness(t *testing.T, cfg rabbitmq.Config) transporttest.Harness {
	raw := dialRaw(t)
	var (
		mu     sync.Mutex
		opened = make(map[string][]*rabbitmq.Transport) // by namespace
		pubMu  sync.Mutex
		pubCh  *amqp.Channel
	)
	return transporttest.Harness{
		Open: func(t testing.TB, ns string) transport.Transport {
			mu.Lock()
			first := opened[ns] == nil
			mu.Unlock()
			if first {
				// Registered before the transport's Close, so it runs after
				// every transport of the namespace closed.
				t.Cleanup(func() {
					mu.Lock()
					trs := opened[ns]
					delete(opened, ns)
					mu.Unlock()
					deleteNamespace(t, raw, trs)
				})
			}
			c := cfg
			c.Namespace = ns
			tr, err := rabbitmq.Connect(context.Background(), brokerURL(), c)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			opened[ns] = append(opened[ns], tr)
			mu.Unlock()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = tr.Close(ctx)
			})
			return tr
		},
		PublishRaw: func(t testing.TB, ns, topic string, headers map[string]string, body []byte) {
			pubMu.Lock()
			defer pubMu.Unlock()
			if pubCh == nil || pubCh.IsClosed() {
				ch, err := raw.Channel()
				if err != nil {
					t.Fatal(err)
				}
				if err := ch.Confirm(false); err != nil {
					t.Fatal(err)
				}
				pubCh = ch
			}
			h := amqp.Table{}
			for k, v := range headers {
				h[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dc, err := pubCh.PublishWithDeferredConfirmWithContext(ctx, "troupe."+ns, transport.WireType(topic, 1), false, false,
				amqp.Publishing{Headers: h, Body: body, DeliveryMode: amqp.Persistent})
			if err != nil {
				t.Fatalf("raw publish: %v", err)
			}
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				t.Fatalf("raw publish not confirmed: %v", err)
			}
		},
		Kill: func(t testing.TB, tr transport.Transport) {
			tr.(*rabbitmq.Transport).Kill()
		},
		// A dead-letter queue replaced by one that holds nothing and
		// refuses what it cannot hold: the broker nacks every dead letter.
		// Deleting it lets the transport declare the real one again.
		BreakDeadLetters: func(t testing.TB, ns string, ref transport.SubscriptionRef) func() {
			dlq := ns + "." + ref.Service + "." + ref.Name + ".dlq"
			on := func(f func(ch *amqp.Channel) error) {
				ch, err := raw.Channel()
				if err != nil {
					t.Fatal(err)
				}
				defer ch.Close()
				if err := f(ch); err != nil {
					t.Fatalf("dead-letter queue %s: %v", dlq, err)
				}
			}
			del := func(ch *amqp.Channel) error { _, err := ch.QueueDelete(dlq, false, false, false); return err }
			on(del)
			on(func(ch *amqp.Channel) error {
				_, err := ch.QueueDeclare(dlq, true, false, false, false, amqp.Table{
					"x-queue-type": "classic", "x-max-length": int64(0), "x-overflow": "reject-publish",
				})
				return err
			})
			return func() { on(del) }
		},
		// RabbitMQ keeps no history for StartAtBeginning.
		Features: transporttest.Features{Ordered: true, Tap: true, Lag: true, Journal: true},
	}
}

// deleteNamespace deletes the queues and the exchange the transports of one
// test namespace declared.
func deleteNamespace(t testing.TB, raw *amqp.Connection, trs []*rabbitmq.Transport) {
	if len(trs) == 0 {
		return
	}
	ch, err := raw.Channel()
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer ch.Close()
	seen := make(map[string]bool)
	for _, tr := range trs {
		for _, q := range rabbitmq.DeclaredQueues(tr) {
			if seen[q] {
				continue
			}
			seen[q] = true
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Logf("cleanup: delete queue %s: %v", q, err)
				if ch, err = raw.Channel(); err != nil {
					return
				}
			}
		}
	}
	if err := ch.ExchangeDelete(rabbitmq.ExchangeName(trs[0]), false, false); err != nil {
		t.Logf("cleanup: delete exchange: %v", err)
	}
}
