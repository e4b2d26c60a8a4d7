package metrics_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/metrics"
	"github.com/troupe-go/troupe/transport/natsjs"
	"github.com/troupe-go/troupe/troupetest"
)

// TestLagGauge publishes a backlog of known size to a subscription whose
// service does not run, on each broker, and scrapes it as
// troupe_consumer_lag. External brokers are skipped when absent, except
// in CI.
func TestLagGauge(t *testing.T) {
	natsURL := env("TROUPE_TEST_NATS", "nats://127.0.0.1:4222")
	amqpURL := env("TROUPE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
	for _, b := range []struct {
		name, url string
		cleanup   func(t *testing.T, ns string)
	}{
		{"embedded", "embedded:", nil},
		{"nats", natsURL, func(t *testing.T, ns string) { deleteNATS(t, natsURL, ns) }},
		{"rabbitmq", amqpURL, func(t *testing.T, ns string) { deleteRabbit(t, amqpURL, ns) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			if b.cleanup != nil {
				need(t, b.url)
			}
			ns := fmt.Sprintf("lag%x", time.Now().UnixNano())
			app := troupe.New(troupetest.Config(t, troupe.Config{Name: ns, Broker: b.url,
				Services: []string{"orders"}, HTTPAddr: "127.0.0.1:0"}))
			app.Service("orders").Publishes(orderPlaced)
			troupe.Subscribe(app.Service("audit"), orderPlaced, "log",
				func(context.Context, troupe.Event[order]) error { return nil })
			if err := metrics.Install(app); err != nil {
				t.Fatal(err)
			}
			if b.cleanup != nil {
				t.Cleanup(func() { b.cleanup(t, ns) }) // after the app stops: cleanups run last-in first-out
			}
			troupetest.Start(t, app)

			const backlog = 6
			if err := troupe.PublishBatch(app.Context(t.Context()), orderPlaced, make([]order, backlog)); err != nil {
				t.Fatal(err)
			}
			auditLog := map[string]string{"app": ns, "service": "audit", "subscription": "log", "topic": "order_placed.v1"}
			f := scrapeUntil(t, app, func(f families) bool { return f.value("troupe_consumer_lag", auditLog) == backlog })
			if n := f.value("troupe_consumer_lag_errors_total", map[string]string{"service": "audit"}); n > 0 {
				t.Errorf("%v lag errors", n)
			}
		})
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// need skips the test when nothing listens at the broker URL's address,
// or fails it in CI.
func need(t *testing.T, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no broker at %s (%v): CI needs it", u.Redacted(), err)
		}
		t.Skipf("no broker at %s (%v); start it to run this test", u.Redacted(), err)
	}
	c.Close()
}

func deleteNATS(t *testing.T, url, ns string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = natsjs.DeleteNamespace(ctx, nc, ns)
}

func deleteRabbit(t *testing.T, url, ns string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	for _, q := range []string{ns + ".audit.log", ns + ".audit.log.dlq"} {
		if ch, err := conn.Channel(); err == nil {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Logf("cleanup: delete queue %s: %v", q, err)
			}
			ch.Close()
		}
	}
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete("troupe."+ns, false, false)
		ch.Close()
	}
}
