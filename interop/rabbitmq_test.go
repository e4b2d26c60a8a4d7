package interop_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/rabbitmq"
)

// amqpURL is the RabbitMQ the tests use: TROUPE_TEST_AMQP, as for the
// transport's own tests, else the local broker with the guest account.
func amqpURL() string {
	if u := os.Getenv("TROUPE_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// dialAMQP connects a plain client to the broker, for cleaning up; no
// broker means the test cannot run.
func dialAMQP(t *testing.T) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		unavailable(t, "no RabbitMQ (%v): start rabbitmq-server (apt-get install -y rabbitmq-server), or point TROUPE_TEST_AMQP at one", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// pythonWithPika returns a Python interpreter that can import pika:
// TROUPE_INTEROP_PYTHON, else Debian's /usr/bin/python3, where the Debian
// package python3-pika installs it (a pyenv python3 first on PATH does not
// see Debian's packages).
func pythonWithPika(t *testing.T) string {
	t.Helper()
	py := os.Getenv("TROUPE_INTEROP_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", "import pika; print(pika.__version__)").CombinedOutput()
	if err != nil {
		why := err.Error()
		if o := strings.TrimSpace(string(out)); o != "" {
			why += ": " + o
		}
		unavailable(t, "%s cannot import pika (%s): install it with apt-get install -y python3-pika, or set TROUPE_INTEROP_PYTHON to a Python that has it", py, why)
	}
	t.Logf("pika %s under %s", strings.TrimSpace(string(out)), py)
	return py
}

// deleteRabbitNamespace deletes what a troupe app named ns declared on the
// broker for the given subscriptions ("service.name"): each subscription's
// queue, its dead-letter queue and its retry queues (the names are the
// layout documented in package rabbitmq), then the app's exchange.
// RabbitMQ answers the deletion of a queue that does not exist with
// success, so retry queues never created cost one round trip each.
func deleteRabbitNamespace(t *testing.T, conn *amqp.Connection, ns string, subs ...string) {
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer func() { ch.Close() }()
	for _, sub := range subs {
		q := ns + "." + sub
		names := []string{q, q + ".dlq"}
		for _, d := range rabbitmq.DefaultRetryDelays {
			names = append(names, q+".retry."+formatMillis(d)+"ms")
		}
		for _, name := range names {
			if _, err := ch.QueueDelete(name, false, false, false); err != nil {
				t.Errorf("cleanup: delete queue %s: %v", name, err)
				if ch, err = conn.Channel(); err != nil {
					return
				}
			}
		}
	}
	if err := ch.ExchangeDelete("troupe."+ns, false, false); err != nil {
		t.Errorf("cleanup: delete exchange troupe.%s: %v", ns, err)
	}
}

func formatMillis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// TestPikaPublishesToTroupe has a Python program publish events with pika
// to the exchange of a troupe app, in CloudEvents binary content mode, and
// checks that the app's handler gets every attribute and the data. It does
// so twice: with header values as AMQP long strings and the content type
// as the AMQP property (what pika does with str values), and with header
// values as AMQP byte arrays and the content type as a header (what pika
// does with bytes values).
func TestPikaPublishesToTroupe(t *testing.T) {
	conn := dialAMQP(t)
	py := pythonWithPika(t)

	ns := uniqueName("pika_in")
	signups := troupe.NewTopic[signup]("signup_received", 1)
	app := troupe.New(troupe.Config{Name: ns, Broker: amqpURL(), HTTPAddr: "off", Logger: testLogger(t)})
	app.Topics(signups) // published from outside the app
	got := make(chan troupe.Event[signup], 8)
	troupe.Subscribe(app.Service("crm"), signups, "import", func(ctx context.Context, ev troupe.Event[signup]) error {
		got <- ev
		return nil
	})
	t.Cleanup(func() { deleteRabbitNamespace(t, conn, ns, "crm.import") })
	startApp(t, app)

	for _, tc := range []struct {
		name  string
		bytes bool
	}{
		{"str headers and content-type property", false},
		{"bytes headers and content-type header", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			correlation := "signup-" + ns
			args := []string{"testdata/pika_publish.py",
				"--exchange", "troupe." + ns,
				"--routing-key", signups.Type(),
				"--source", "/crm-import/python",
				"--type", signups.Type(),
				"--correlation-id", correlation,
				"--traceparent", sampleTraceParent,
				"--data", mustJSON(t, sampleSignup),
				"--timeout", scriptTimeoutArg(),
			}
			if tc.bytes {
				args = append(args, "--bytes-headers")
			}
			p := startProc(t, ctx, "", []string{"TROUPE_INTEROP_URL=" + amqpURL()}, py, args...)
			var sent sentEvent
			decodeLine(t, p.line(t, ctx), &sent)
			p.wait(t, ctx)

			ev := receiveID(t, ctx, got, sent.ID)
			checkReceived(t, ev, sent, "/crm-import/python", "signup_received.v1", correlation, "crm.import")
		})
	}
}

// TestPikaConsumesFromTroupe has a troupe handler publish an event (so it
// carries a correlation id from the edge and a causation id) and a Python
// program read it with pika from its own queue bound to the app's exchange,
// beside troupe's own subscriber. The Python side must see every
// CloudEvents attribute as a header, the AMQP properties troupe sets, and
// the JSON data.
func TestPikaConsumesFromTroupe(t *testing.T) {
	conn := dialAMQP(t)
	py := pythonWithPika(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	ns := uniqueName("pika_out")
	app := troupe.New(troupe.Config{Name: ns, Broker: amqpURL(), HTTPAddr: "off", Logger: testLogger(t)})
	w := invoiceFlow(app, ns)
	t.Cleanup(func() { deleteRabbitNamespace(t, conn, ns, "billing.invoice", "audit.record") })
	startApp(t, app)

	// The queue must be bound before troupe publishes: an exchange keeps
	// nothing for queues bound later.
	p := startProc(t, ctx, "", []string{"TROUPE_INTEROP_URL=" + amqpURL()}, py, "testdata/pika_consume.py",
		"--exchange", "troupe."+ns,
		"--routing-key", w.invoiced.Type(),
		"--timeout", scriptTimeoutArg())
	p.waitReady(t, ctx)

	want := w.run(t, ctx, app)

	var msg struct {
		Exchange    string            `json:"exchange"`
		RoutingKey  string            `json:"routing_key"`
		Headers     map[string]any    `json:"headers"`
		HeaderTypes map[string]string `json:"header_types"`
		Properties  struct {
			ContentType  string `json:"content_type"`
			MessageID    string `json:"message_id"`
			Type         string `json:"type"`
			Timestamp    int64  `json:"timestamp"`
			DeliveryMode int    `json:"delivery_mode"`
		} `json:"properties"`
		Body string `json:"body"`
	}
	decodeLine(t, p.line(t, ctx), &msg)
	p.wait(t, ctx)
	t.Logf("pika received: exchange %s, key %s, properties %+v, header types %v", msg.Exchange, msg.RoutingKey, msg.Properties, msg.HeaderTypes)

	headers := make(map[string]string, len(msg.Headers))
	for k, v := range msg.Headers {
		s, ok := v.(string)
		if !ok || msg.HeaderTypes[k] != "str" {
			t.Errorf("header %s = %#v reached pika as a %s, want a str (an AMQP long string)", k, v, msg.HeaderTypes[k])
		}
		headers[k] = s
	}
	checkPublished(t, headers, msg.Body, want, "content-type")

	if msg.Exchange != "troupe."+ns || msg.RoutingKey != w.invoiced.Type() {
		t.Errorf("delivered from exchange %q with key %q, want troupe.%s and %s", msg.Exchange, msg.RoutingKey, ns, w.invoiced.Type())
	}
	pr := msg.Properties
	if pr.ContentType != "application/json" || pr.MessageID != want.env.ID || pr.Type != want.env.Type || pr.DeliveryMode != 2 {
		t.Errorf("AMQP properties %+v; want content type application/json, message id %s, type %s, delivery mode 2 (persistent)",
			pr, want.env.ID, want.env.Type)
	}
	// The AMQP timestamp property holds whole seconds.
	if pr.Timestamp != want.env.Time.Unix() {
		t.Errorf("AMQP timestamp %d, want %d (%s)", pr.Timestamp, want.env.Time.Unix(), want.env.Time)
	}
}

// invoiceFlowT is the choreography both consume tests run: the test
// publishes order_placed at the edge with a correlation id; billing's
// handler publishes invoice_issued, which audit (a troupe subscriber) and
// the foreign client both receive.
type invoiceFlowT struct {
	ns       string
	placed   *troupe.Topic[orderPlaced]
	invoiced *troupe.Topic[invoiceIssued]
	triggers chan troupe.Envelope
	audits   chan troupe.Event[invoiceIssued]
}

func invoiceFlow(app *troupe.App, ns string) *invoiceFlowT {
	w := &invoiceFlowT{
		ns:       ns,
		placed:   troupe.NewTopic[orderPlaced]("order_placed", 1),
		invoiced: troupe.NewTopic[invoiceIssued]("invoice_issued", 1),
		triggers: make(chan troupe.Envelope, 4),
		audits:   make(chan troupe.Event[invoiceIssued], 4),
	}
	app.Service("orders").Publishes(w.placed)
	billing := app.Service("billing").Publishes(w.invoiced)
	troupe.Subscribe(billing, w.placed, "invoice", func(ctx context.Context, ev troupe.Event[orderPlaced]) error {
		if err := troupe.Publish(ctx, w.invoiced, invoiceFor(ev.Data)); err != nil {
			return err
		}
		select {
		case w.triggers <- ev.Envelope:
		default: // a redelivery; the first one is what the test looks at
		}
		return nil
	})
	troupe.Subscribe(app.Service("audit"), w.invoiced, "record", func(ctx context.Context, ev troupe.Event[invoiceIssued]) error {
		select {
		case w.audits <- ev:
		default:
		}
		return nil
	})
	return w
}

func invoiceFor(o orderPlaced) invoiceIssued {
	return invoiceIssued{OrderID: o.OrderID, Customer: sampleSignup, Lines: []string{"2 × Kaffee", "1 × Kuchen"}, Total: o.Total}
}

// run publishes the order at the edge and returns what the foreign client
// must see of the invoice, once troupe's own subscriber has it.
func (w *invoiceFlowT) run(t *testing.T, ctx context.Context, app *troupe.App) wantPublished {
	t.Helper()
	correlation := "order-" + w.ns
	order := orderPlaced{OrderID: "A-1001", Total: 1250}
	pctx := troupe.WithCorrelationID(app.Context(ctx), correlation)
	if err := troupe.Publish(pctx, w.placed, order); err != nil {
		t.Fatalf("publish order_placed: %v", err)
	}
	trigger := receive(t, ctx, w.triggers, "billing never handled order_placed")
	audit := receive(t, ctx, w.audits, "audit never received invoice_issued")
	if audit.CausationID != trigger.ID || audit.CorrelationID != correlation {
		t.Errorf("troupe's own subscriber saw causation %q, correlation %q; want %q, %q", audit.CausationID, audit.CorrelationID, trigger.ID, correlation)
	}
	return wantPublished{
		env:         audit.Envelope,
		source:      "/" + w.ns + "/billing",
		correlation: correlation,
		causation:   trigger.ID,
		data:        invoiceFor(order),
	}
}
