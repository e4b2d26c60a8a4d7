package troupe_test

import (
	"context"
	"os"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/rabbitmq"
	"github.com/troupe-go/troupe/troupetest"
)

const testAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

// onBrokers runs body on the embedded broker and on RabbitMQ. newApp
// returns an app of a name unique to the run, with test defaults, whose
// queues on RabbitMQ are deleted when the test ends. Without RabbitMQ the
// subtest skips, or fails under CI.
func onBrokers(t *testing.T, body func(t *testing.T, newApp func(cfg troupe.Config) *troupe.App)) {
	t.Run("embedded", func(t *testing.T) {
		body(t, func(cfg troupe.Config) *troupe.App { return troupe.New(troupetest.Config(t, cfg)) })
	})
	t.Run("rabbitmq", func(t *testing.T) {
		conn, err := amqp.Dial(testAMQPURL)
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("RabbitMQ at 127.0.0.1:5672: %v (CI needs it)", err)
			}
			t.Skipf("no RabbitMQ at 127.0.0.1:5672 (%v); start it to run this test", err)
		}
		t.Cleanup(func() { conn.Close() })
		body(t, func(cfg troupe.Config) *troupe.App {
			cfg.Name = uniqueName(cfg.Name)
			cfg.Broker = testAMQPURL
			app := troupe.New(troupetest.Config(t, cfg))
			var queues []string
			app.OnStop(func(context.Context) error {
				if tr, ok := app.Transport().(*rabbitmq.Transport); ok {
					queues = tr.Queues()
				}
				return nil
			})
			// Registered before the test starts the app, so it runs after
			// the app stopped.
			t.Cleanup(func() {
				ch, err := conn.Channel()
				if err != nil {
					return
				}
				defer ch.Close()
				for _, q := range queues {
					_, _ = ch.QueueDelete(q, false, false, false)
				}
				_ = ch.ExchangeDelete("troupe."+cfg.Name, false, false)
			})
			return app
		})
	})
}

// The broker URL's scheme picks the driver that registered it; the core
// knows no driver's options, and its errors hide passwords.
func TestBrokerURLErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"kafka://u:secret@host:9092", "unknown broker scheme"},
		{"embedded:?sync=sometimes", `sync="sometimes"`},
		{"nats://u:secret@127.0.0.1:1?replicas=9", "replicas=\"9\": use 1 to 5"},
	} {
		app := troupe.New(troupe.Config{Name: "urls", Broker: tc.url, DataDir: t.TempDir(), Logger: quietLogger(), HTTPAddr: "off"})
		err := app.Start(t.Context())
		if err == nil {
			_ = app.Stop(t.Context())
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("broker %s: %v; want an error saying %s, without the password", tc.url, err, tc.want)
		}
	}
}
