package rabbitmq

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// Foreign clients send text headers as byte arrays as often as strings, and
// the content type as a property.
func TestDecodeForeignHeaders(t *testing.T) {
	d := &amqp.Delivery{
		Headers: amqp.Table{
			"ce-specversion": []byte("1.0"),
			"ce-id":          "abc",
			"CE-Source":      []byte("pika"),
			"ce-type":        "orders.v2",
			"ce-tenant":      []byte("acme"),
			"content-type":   "text/plain",
			"x-death":        []any{amqp.Table{"count": int64(1)}},
		},
		ContentType: "application/cloudevents-data+json",
		Body:        []byte(`{}`),
	}
	m, err := decode(d)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "abc" || m.Source != "pika" || m.Type != "orders.v2" || m.Extensions["tenant"] != "acme" {
		t.Errorf("decoded %+v", m)
	}
	if m.DataContentType != "application/cloudevents-data+json" {
		t.Errorf("DataContentType %q, want the content-type property", m.DataContentType)
	}
	if len(m.Extensions) != 1 {
		t.Errorf("Extensions %v, want only tenant", m.Extensions)
	}
}

// The CloudEvents AMQP binding names attributes cloudEvents_<name> (or
// cloudEvents:<name>) and may send a time as an AMQP timestamp; an event
// from such a client (an AMQP 1.0 SDK through RabbitMQ) reads as one
// written with ce- headers.
func TestDecodeAMQPBindingHeaders(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, sep := range []string{"_", ":"} {
		d := &amqp.Delivery{
			Headers: amqp.Table{
				"cloudEvents" + sep + "specversion": "1.0",
				"cloudEvents" + sep + "id":          "abc",
				"cloudEvents" + sep + "source":      "/billing",
				"cloudEvents" + sep + "type":        "orders.v1",
				"cloudEvents" + sep + "time":        at,
				"cloudEvents" + sep + "tenant":      []byte("acme"),
			},
			ContentType: "application/json",
			Body:        []byte(`{}`),
		}
		m, err := decode(d)
		if err != nil {
			t.Fatalf("separator %q: %v", sep, err)
		}
		if m.ID != "abc" || m.Source != "/billing" || m.Type != "orders.v1" || !m.Time.Equal(at) ||
			m.Extensions["tenant"] != "acme" || len(m.Extensions) != 1 || m.DataContentType != "application/json" {
			t.Errorf("separator %q: decoded %+v", sep, m)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := &transport.Message{ID: "1", Type: "orders.v1", Source: "s", CorrelationID: "c",
		Extensions: map[string]string{"seq": "7"}, Data: []byte(`{"n":1}`)}
	p := encode(in)
	if p.ContentType != transport.ContentTypeJSON || p.MessageId != "1" || p.DeliveryMode != amqp.Persistent {
		t.Errorf("properties %+v", p)
	}
	out, err := decode(&amqp.Delivery{Headers: p.Headers, ContentType: p.ContentType, Body: p.Body})
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.CorrelationID != in.CorrelationID || out.Extensions["seq"] != "7" || string(out.Data) != string(in.Data) {
		t.Errorf("round trip: %+v", out)
	}
}

func TestAttemptOf(t *testing.T) {
	for _, c := range []struct {
		name string
		d    amqp.Delivery
		want int
	}{
		{"fresh", amqp.Delivery{}, 1},
		{"retry", amqp.Delivery{Headers: amqp.Table{hdrAttempt: int64(3)}}, 3},
		{"retry from a foreign client", amqp.Delivery{Headers: amqp.Table{hdrAttempt: []byte("3")}}, 3},
		{"classic redelivery", amqp.Delivery{Redelivered: true, Headers: amqp.Table{hdrAttempt: int32(2)}}, 3},
		{"quorum redeliveries", amqp.Delivery{Redelivered: true, Headers: amqp.Table{hdrDeliveryCount: int64(2)}}, 3},
	} {
		if got := attemptOf(&c.d); got != c.want {
			t.Errorf("%s: attempt %d, want %d", c.name, got, c.want)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := redact("amqp://user:secret@host:5672/vh"); got != "amqp://user:xxxxx@host:5672/vh" {
		t.Errorf("redact: %s", got)
	}
	if got := redact("amqp://host"); got != "amqp://host" {
		t.Errorf("redact without password: %s", got)
	}
}
