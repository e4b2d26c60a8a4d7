package rabbitmq

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport"
)

// Headers troupe adds to messages beside the CloudEvents attributes. None
// starts with "ce-", so none shows up as an event attribute.
const (
	// hdrAttempt is the attempt number the message is delivered as, before
	// counting broker redeliveries; absent means 1. Retries raise it.
	hdrAttempt = "troupe-attempt"
	// hdrFirstAttempt is when the first attempt started, carried through
	// retries for the dead letter.
	hdrFirstAttempt = "troupe-first-attempt"
	// hdrDue holds the Unix time in milliseconds before which a retry that
	// passes through the largest delay bucket again must not be handled.
	hdrDue = "troupe-due"
	// hdrDLID identifies a dead letter within its queue; the other
	// dead-letter headers are shared by all transports (package transport).
	hdrDLID = "troupe-dl-id"

	// hdrDeliveryCount is the broker's count of redeliveries in quorum
	// queues.
	hdrDeliveryCount = "x-delivery-count"
	// hdrDeath is the broker's dead-lettering history.
	hdrDeath = "x-death"
)

// encode maps a message to an AMQP message in CloudEvents binary mode: every
// attribute a header named as on every troupe transport (ce-id, ce-type, ...),
// the data content type also in the content-type property, the event id as
// message id, and persistent delivery so that the broker writes it to disk.
func encode(m *transport.Message) amqp.Publishing {
	h := make(amqp.Table, 10)
	transport.EncodeHeaders(m, func(k, v string) { h[k] = v })
	ct, _ := h[transport.HeaderContentType].(string)
	return amqp.Publishing{
		Headers:      h,
		ContentType:  ct,
		DeliveryMode: amqp.Persistent,
		MessageId:    m.ID,
		Timestamp:    m.Time,
		Type:         m.Type,
		Body:         m.Data,
	}
}

// decode reads the CloudEvents attributes of a delivery. Header values may be
// strings or byte arrays (clients differ in how they send text), or AMQP
// timestamps for times; attribute names may be troupe's ce-<name> or the
// AMQP binding's cloudEvents_<name> and cloudEvents:<name>. The
// content-type property, when set, wins over a content-type header, as it
// is the AMQP way to say it.
func decode(d *amqp.Delivery) (transport.Message, error) {
	return transport.DecodeHeaders(func(yield func(k, v string) bool) {
		for k, v := range d.Headers {
			if s, ok := headerString(v); ok && !yield(attributeHeader(k), s) {
				return
			}
		}
		if d.ContentType != "" {
			yield(transport.HeaderContentType, d.ContentType)
		}
	}, d.Body)
}

// amqpPrefixLen is the length of the AMQP binding's attribute prefixes,
// "cloudEvents_" and "cloudEvents:".
const amqpPrefixLen = len("cloudEvents_")

// attributeHeader names an AMQP binding attribute property as troupe's ce-
// header; other names are returned as they are.
func attributeHeader(k string) string {
	if len(k) > amqpPrefixLen && (k[amqpPrefixLen-1] == '_' || k[amqpPrefixLen-1] == ':') &&
		strings.EqualFold(k[:amqpPrefixLen-1], "cloudEvents") {
		return "ce-" + k[amqpPrefixLen:]
	}
	return k
}

// headerString returns a header value as text, for the types AMQP tables
// hold; ok is false for tables and arrays.
func headerString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), true
	case bool, int, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprint(x), true
	case amqp.Decimal:
		return fmt.Sprintf("%de-%d", x.Value, x.Scale), true
	}
	return "", false
}

// headerInt returns a header value as an integer; ok is false when it is
// missing or not a number.
func headerInt(h amqp.Table, key string) (int64, bool) {
	switch x := h[key].(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	case string, []byte:
		s, _ := headerString(x)
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// headerText returns a header value as text, "" when missing.
func headerText(h amqp.Table, key string) string {
	s, _ := headerString(h[key])
	return s
}

// headerTime parses a header written with formatTime; zero when missing.
func headerTime(h amqp.Table, key string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, headerText(h, key))
	return t
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// isBrokerHeader reports the headers the broker adds to describe one hop:
// the delivery count of quorum queues and the dead-lettering history. They
// are dropped when troupe publishes a message again.
func isBrokerHeader(k string) bool {
	return k == hdrDeliveryCount || k == hdrDeath ||
		strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-")
}

// republish returns a delivery as a message to publish again: its
// properties and body, and its headers without the broker's per-hop ones and
// without those named in drop or starting with a prefix in dropPrefixes. The
// user id is dropped: the broker checks it against the publishing
// connection's user.
func republish(d *amqp.Delivery, drop []string, dropPrefixes ...string) amqp.Publishing {
	h := make(amqp.Table, len(d.Headers)+4)
next:
	for k, v := range d.Headers {
		if isBrokerHeader(k) {
			continue
		}
		for _, p := range dropPrefixes {
			if strings.HasPrefix(k, p) {
				continue next
			}
		}
		for _, name := range drop {
			if k == name {
				continue next
			}
		}
		h[k] = v
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// attemptOf returns the attempt number of a delivery: troupe's own count,
// carried in a header through retries, plus the broker's redeliveries after a
// consumer died or stopped hard holding it. Quorum queues count those
// (x-delivery-count); classic queues only flag them, so several deaths count
// as one.
func attemptOf(d *amqp.Delivery) int {
	base := int64(1)
	if n, ok := headerInt(d.Headers, hdrAttempt); ok && n > 1 {
		base = n
	}
	redelivered := int64(0)
	if n, ok := headerInt(d.Headers, hdrDeliveryCount); ok && n > 0 {
		redelivered = n
	} else if d.Redelivered {
		redelivered = 1
	}
	return int(base + redelivered)
}

// rawHeaders returns every header and the content-type property as text,
// for diagnosing a message troupe could not read.
func rawHeaders(d *amqp.Delivery, skipPrefix string) map[string][]string {
	out := make(map[string][]string, len(d.Headers)+1)
	for k, v := range d.Headers {
		if skipPrefix != "" && strings.HasPrefix(k, skipPrefix) {
			continue
		}
		if s, ok := headerString(v); ok {
			out[k] = []string{s}
		} else {
			out[k] = []string{fmt.Sprint(v)}
		}
	}
	if d.ContentType != "" {
		if _, ok := out[transport.HeaderContentType]; !ok {
			out[transport.HeaderContentType] = []string{d.ContentType}
		}
	}
	return out
}
