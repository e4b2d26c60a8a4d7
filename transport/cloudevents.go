package transport

import (
	"fmt"
	"strings"
	"time"
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

	// extensionPrefix starts every CloudEvents attribute header.
	extensionPrefix = "ce-"
)

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
	m := Message{Data: body}
	var spec, ts string
	each(func(key, value string) bool {
		switch k := strings.ToLower(key); k {
		case HeaderSpecVersion:
			spec = value
		case HeaderID:
			m.ID = value
		case HeaderSource:
			m.Source = value
		case HeaderType:
			m.Type = value
		case HeaderTime:
			ts = value
		case HeaderCorrelationID:
			m.CorrelationID = value
		case HeaderCausationID:
			m.CausationID = value
		case HeaderTraceParent:
			m.TraceParent = value
		case HeaderContentType:
			m.DataContentType = value
		default:
			if strings.HasPrefix(k, extensionPrefix) && len(k) > len(extensionPrefix) {
				if m.Extensions == nil {
					m.Extensions = make(map[string]string)
				}
				m.Extensions[k[len(extensionPrefix):]] = value
			}
		}
		return true
	})
	if spec == "" {
		return m, fmt.Errorf("%w: missing ce-specversion (is this a CloudEvent in binary content mode?)", ErrMalformed)
	}
	if spec != SpecVersion {
		return m, fmt.Errorf("%w: ce-specversion %q, want %q", ErrMalformed, spec, SpecVersion)
	}
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return m, fmt.Errorf("%w: ce-time %q is not RFC 3339", ErrMalformed, ts)
		}
		m.Time = t
	}
	return m, m.Validate()
}

// DecodeHeaderMap is [DecodeHeaders] for headers held in a map of value
// lists, as NATS and HTTP keep them; it uses each key's first value.
func DecodeHeaderMap(h map[string][]string, body []byte) (Message, error) {
	return DecodeHeaders(func(yield func(key, value string) bool) {
		for k, vs := range h {
			if len(vs) > 0 && !yield(k, vs[0]) {
				return
			}
		}
	}, body)
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
