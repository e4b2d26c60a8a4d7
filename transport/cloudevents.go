package transport

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Header names of the CloudEvents binary content mode, as troupe writes them.
// Every transport maps a Message to exactly these names, so a client in any
// language can read and write troupe events.
const (
	HeaderID            = "ce-id"
	HeaderSource        = "ce-source"
	HeaderType          = "ce-type"
	HeaderSpecVersion   = "ce-specversion"
	HeaderTime          = "ce-time"
	HeaderCorrelationID = "ce-correlationid"
	HeaderCausationID   = "ce-causationid"
	HeaderTraceParent   = "traceparent"
	HeaderContentType   = "content-type"
	// HeaderDataContentType carries datacontenttype where the protocol
	// binding names it as an attribute header (NATS); elsewhere it is the
	// protocol's content type (HeaderContentType, the AMQP content-type
	// property).
	HeaderDataContentType = "ce-datacontenttype"
	// HeaderTraceParentAttribute is the distributed tracing extension's
	// traceparent as an attribute header. troupe writes traceparent, the
	// W3C header, and reads either.
	HeaderTraceParentAttribute = "ce-traceparent"

	// extensionPrefix starts every CloudEvents attribute header.
	extensionPrefix = "ce-"
)

// Source returns the ce-source troupe writes for the events a service of an
// app publishes: "/<app>/<service>", or "/<app>" for events published
// outside any service.
func Source(app, service string) string {
	if service == "" {
		return "/" + app
	}
	return "/" + app + "/" + service
}

// ParseSource reads a ce-source written by [Source]. ok is false for a
// source of another shape, such as a foreign producer's URI.
func ParseSource(source string) (app, service string, ok bool) {
	rest, found := strings.CutPrefix(source, "/")
	if !found {
		return "", "", false
	}
	app, service, _ = strings.Cut(rest, "/")
	if !ValidName(app) || service != "" && !ValidName(service) || strings.HasSuffix(rest, "/") {
		return "", "", false
	}
	return app, service, true
}

// ContentTypeJSON is the default DataContentType.
const ContentTypeJSON = "application/json"

// EncodeHeaders calls set once for each header that carries m's attributes in
// CloudEvents binary content mode.
func EncodeHeaders(m *Message, set func(key, value string)) {
	set(HeaderSpecVersion, SpecVersion)
	set(HeaderID, m.ID)
	set(HeaderSource, m.Source)
	set(HeaderType, m.Type)
	if !m.Time.IsZero() {
		set(HeaderTime, m.Time.UTC().Format(time.RFC3339Nano))
	}
	if m.CorrelationID != "" {
		set(HeaderCorrelationID, m.CorrelationID)
	}
	if m.CausationID != "" {
		set(HeaderCausationID, m.CausationID)
	}
	if m.TraceParent != "" {
		set(HeaderTraceParent, m.TraceParent)
	}
	ct := m.DataContentType
	if ct == "" {
		ct = ContentTypeJSON
	}
	set(HeaderContentType, ct)
	for k, v := range m.Extensions {
		set(extensionPrefix+k, v)
	}
}

// DecodeHeaders builds a Message from CloudEvents binary-mode headers, looked
// up with get (which must match names case-insensitively where the protocol
// does), and the body. Header names are compared in lower case; each is
// passed to each as its original key. It returns an error wrapping
// [ErrMalformed] when a required attribute is missing or invalid; the
// returned Message then holds whatever could be read.
func DecodeHeaders(each func(yield func(key, value string) bool), body []byte) (Message, error) {
	d := headerDecoder{m: Message{Data: body}}
	each(func(key, value string) bool {
		d.set(strings.ToLower(key), value)
		return true
	})
	return d.finish()
}

// headerDecoder collects the attributes of one message for DecodeHeaders
// and DecodeHeaderMap.
type headerDecoder struct {
	m        Message
	spec, ts string
	// The attributes that two headers may carry; the attribute header
	// (ce-datacontenttype) wins over the protocol's (content-type), and the
	// W3C traceparent over ce-traceparent.
	ct, ceCT, ceTP string
}

// set records one header; key must be in lower case.
func (d *headerDecoder) set(key, value string) {
	switch key {
	case HeaderSpecVersion:
		d.spec = value
	case HeaderID:
		d.m.ID = value
	case HeaderSource:
		d.m.Source = value
	case HeaderType:
		d.m.Type = value
	case HeaderTime:
		d.ts = value
	case HeaderCorrelationID:
		d.m.CorrelationID = value
	case HeaderCausationID:
		d.m.CausationID = value
	case HeaderTraceParent:
		d.m.TraceParent = value
	case HeaderContentType:
		d.ct = value
	case HeaderDataContentType:
		d.ceCT = value
	case HeaderTraceParentAttribute:
		d.ceTP = value
	default:
		if strings.HasPrefix(key, extensionPrefix) && len(key) > len(extensionPrefix) {
			if d.m.Extensions == nil {
				d.m.Extensions = make(map[string]string)
			}
			d.m.Extensions[key[len(extensionPrefix):]] = value
		}
	}
}

func (d *headerDecoder) finish() (Message, error) {
	d.m.DataContentType = d.ct
	if d.ceCT != "" {
		d.m.DataContentType = d.ceCT
	}
	if d.m.TraceParent == "" {
		d.m.TraceParent = d.ceTP
	}
	if d.spec == "" {
		return d.m, fmt.Errorf("%w: missing ce-specversion (is this a CloudEvent in binary content mode?)", ErrMalformed)
	}
	if d.spec != SpecVersion {
		return d.m, fmt.Errorf("%w: ce-specversion %q, want %q", ErrMalformed, d.spec, SpecVersion)
	}
	if d.ts != "" {
		t, err := time.Parse(time.RFC3339Nano, d.ts)
		if err != nil {
			return d.m, fmt.Errorf("%w: ce-time %q is not RFC 3339", ErrMalformed, d.ts)
		}
		d.m.Time = t
	}
	return d.m, d.m.validateRequired()
}

// attributeHeaders are the attribute headers EncodeHeaders writes, in the
// case it writes them.
var attributeHeaders = [...]string{
	HeaderSpecVersion, HeaderID, HeaderSource, HeaderType, HeaderTime,
	HeaderCorrelationID, HeaderCausationID, HeaderTraceParent, HeaderContentType,
	HeaderDataContentType,
}

// DecodeHeaderMap is [DecodeHeaders] for headers held in a map of value
// lists, as NATS and HTTP keep them; it uses each key's first value and
// matches names case-insensitively. As the NATS and HTTP protocol bindings
// say, the values of ce- headers are percent-encoded (and may be
// double-quoted): it decodes them (see [EscapeHeaderValue]). Naming in skip
// the headers a transport knows are not attributes (its own message id,
// say) lets it read an event written by troupe with one lookup per
// attribute instead of a pass over every header; with extensions, or names
// in another case (a foreign publisher), it makes the pass.
func DecodeHeaderMap(h map[string][]string, body []byte, skip ...string) (Message, error) {
	d := headerDecoder{m: Message{Data: body}}
	seen := 0
	for _, k := range attributeHeaders {
		if vs, ok := h[k]; ok {
			seen++
			if len(vs) > 0 {
				d.set(k, unescapeHeaderValue(k, vs[0]))
			}
		}
	}
	for i, k := range skip {
		if _, ok := h[k]; ok && !slices.Contains(attributeHeaders[:], k) && !slices.Contains(skip[:i], k) {
			seen++ // each present key counted once
		}
	}
	if seen < len(h) {
		d = headerDecoder{m: Message{Data: body}}
		for k, vs := range h {
			if len(vs) > 0 {
				k = strings.ToLower(k)
				d.set(k, unescapeHeaderValue(k, vs[0]))
			}
		}
	}
	return d.finish()
}

// EscapeHeaderValue percent-encodes an attribute's value for a ce- header,
// as the NATS and HTTP protocol bindings require: space, double quote,
// percent and every byte outside printable ASCII become %XX (upper-case
// hex) of their UTF-8 bytes. A value with none of them is returned as it
// is, without allocating.
func EscapeHeaderValue(v string) string {
	i := 0
	for i < len(v) && !mustEscape(v[i]) {
		i++
	}
	if i == len(v) {
		return v
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+16)
	b = append(b, v[:i]...)
	for ; i < len(v); i++ {
		if c := v[i]; mustEscape(c) {
			b = append(b, '%', hex[c>>4], hex[c&0xf])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func mustEscape(c byte) bool { return c <= ' ' || c >= 0x7f || c == '"' || c == '%' }

// unescapeHeaderValue reads the value of header k as the NATS and HTTP
// bindings write it: ce- headers may be double-quoted (older writers) and
// are percent-encoded. A value whose decoding is not valid (a stray '%', or
// bytes that are not UTF-8) is kept as it came.
func unescapeHeaderValue(k, v string) string {
	if !strings.HasPrefix(k, extensionPrefix) || strings.IndexByte(v, '%') < 0 && (len(v) < 2 || v[0] != '"') {
		return v
	}
	raw := v
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			if v[i] == '\\' && i+1 < len(v)-1 {
				i++
			}
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	if strings.IndexByte(v, '%') < 0 {
		return v
	}
	out, err := url.PathUnescape(v)
	if err != nil || !utf8.ValidString(out) {
		return raw
	}
	return out
}

// Headers troupe adds beside the CloudEvents attributes, named alike on every
// transport so that operators and other clients can read dead letters the
// same way whatever the broker. None starts with "ce-", so none shows up as
// an event attribute.
const (
	// HeaderReplays counts how often a message was replayed from dead letters.
	HeaderReplays = "troupe-replays"

	// Dead-letter headers, all starting with DeadLetterHeaderPrefix.
	HeaderDeadReason       = "troupe-dl-reason"        // a [Reason]
	HeaderDeadError        = "troupe-dl-error"         // the last error's text, cut at MaxErrorText bytes
	HeaderDeadAttempts     = "troupe-dl-attempts"      // attempts made
	HeaderDeadFirstAttempt = "troupe-dl-first-attempt" // RFC 3339
	HeaderDeadLastAttempt  = "troupe-dl-last-attempt"  // RFC 3339
	HeaderDeadAt           = "troupe-dl-dead-at"       // RFC 3339
	DeadLetterHeaderPrefix = "troupe-dl-"
)

// MaxErrorText bounds the error text stored with a dead letter.
const MaxErrorText = 4096

// ErrorText returns err's text for a dead letter, cut at MaxErrorText bytes.
func ErrorText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > MaxErrorText {
		s = s[:MaxErrorText] + "…"
	}
	return s
}

// WriteDeadLetterHeaders calls set once for each troupe-dl-* header that
// records why and when dl died: its reason, error, attempts and times, as
// every transport stores them. The message's own headers (its attributes,
// troupe-replays) travel beside them as they came.
func WriteDeadLetterHeaders(dl *DeadLetter, set func(key, value string)) {
	set(HeaderDeadReason, string(dl.Reason))
	set(HeaderDeadError, dl.Error)
	set(HeaderDeadAttempts, strconv.Itoa(dl.Attempts))
	set(HeaderDeadFirstAttempt, formatTime(dl.FirstAttempt))
	set(HeaderDeadLastAttempt, formatTime(dl.LastAttempt))
	set(HeaderDeadAt, formatTime(dl.DeadAt))
}

// ReadDeadLetterHeaders fills in dl's Reason, Error, Attempts, Replays and
// times from the headers of a stored dead letter, looked up with get (""
// for a missing one). Values it cannot parse stay zero.
func ReadDeadLetterHeaders(get func(key string) string, dl *DeadLetter) {
	dl.Reason = Reason(get(HeaderDeadReason))
	dl.Error = get(HeaderDeadError)
	dl.Attempts, _ = strconv.Atoi(strings.TrimSpace(get(HeaderDeadAttempts)))
	dl.Replays, _ = strconv.Atoi(strings.TrimSpace(get(HeaderReplays)))
	dl.FirstAttempt, _ = time.Parse(time.RFC3339Nano, get(HeaderDeadFirstAttempt))
	dl.LastAttempt, _ = time.Parse(time.RFC3339Nano, get(HeaderDeadLastAttempt))
	dl.DeadAt, _ = time.Parse(time.RFC3339Nano, get(HeaderDeadAt))
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
