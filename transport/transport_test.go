package transport_test

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe/transport"
)

func TestParseType(t *testing.T) {
	for _, tc := range []struct {
		in      string
		topic   string
		version int
		ok      bool
	}{
		{"order_placed.v1", "order_placed", 1, true},
		{"a.v12", "a", 12, true},
		{"with.dots.v1", "", 0, false}, // dots are not allowed in topic names
		{"order_placed", "", 0, false},
		{"order_placed.v0", "", 0, false},
		{"order_placed.vx", "", 0, false},
		{".v1", "", 0, false},
		{"", "", 0, false},
	} {
		topic, v, err := transport.ParseType(tc.in)
		if tc.ok != (err == nil) || topic != tc.topic || v != tc.version {
			t.Errorf("ParseType(%q) = %q, %d, %v", tc.in, topic, v, err)
		}
		if err != nil && !errors.Is(err, transport.ErrMalformed) {
			t.Errorf("ParseType(%q): error %v does not wrap ErrMalformed", tc.in, err)
		}
	}
}

func TestHeadersRoundTrip(t *testing.T) {
	in := transport.Message{
		ID: "id-1", Type: "order_placed.v2", Source: "/shop/orders",
		Time:          time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC),
		CorrelationID: "c", CausationID: "k", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		DataContentType: "application/json", Extensions: map[string]string{"tenant": "acme"},
		Data: []byte(`{"x":1}`),
	}
	h := map[string]string{}
	transport.EncodeHeaders(&in, func(k, v string) { h[k] = v })
	if h["ce-specversion"] != "1.0" || h["ce-type"] != "order_placed.v2" || h["ce-tenant"] != "acme" || h["content-type"] != "application/json" {
		t.Fatalf("headers %v", h)
	}
	// Header names are case-insensitive on the way in (AMQP clients and
	// proxies may change their case).
	upper := map[string]string{}
	for k, v := range h {
		upper[strings.ToUpper(k)] = v
	}
	out, err := transport.DecodeHeaders(maps.All(upper), in.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Time.Equal(in.Time) || out.ID != in.ID || out.Type != in.Type || out.Source != in.Source ||
		out.CorrelationID != in.CorrelationID || out.CausationID != in.CausationID || out.TraceParent != in.TraceParent ||
		out.Extensions["tenant"] != "acme" || string(out.Data) != string(in.Data) {
		t.Fatalf("round trip:\n in  %+v\n out %+v", in, out)
	}
}

func TestDecodeHeadersRejects(t *testing.T) {
	valid := map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t.v1"}
	for name, change := range map[string]func(map[string]string){
		"no specversion":    func(h map[string]string) { delete(h, "ce-specversion") },
		"other specversion": func(h map[string]string) { h["ce-specversion"] = "0.3" },
		"no id":             func(h map[string]string) { delete(h, "ce-id") },
		"no source":         func(h map[string]string) { delete(h, "ce-source") },
		"no type":           func(h map[string]string) { delete(h, "ce-type") },
		"bad type":          func(h map[string]string) { h["ce-type"] = "t" },
		"bad time":          func(h map[string]string) { h["ce-time"] = "yesterday" },
	} {
		h := maps.Clone(valid)
		change(h)
		if _, err := transport.DecodeHeaders(maps.All(h), nil); !errors.Is(err, transport.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := transport.DecodeHeaders(maps.All(valid), nil); err != nil {
		t.Errorf("valid headers: %v", err)
	}
}

func TestDecide(t *testing.T) {
	p := transport.Subscription{Retry: transport.RetryPolicy{MaxAttempts: 4, MinBackoff: time.Second, MaxBackoff: 5 * time.Second, Jitter: transport.NoJitter}}.WithDefaults().Retry
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		err     error
		attempt int
		action  transport.Action
		delay   time.Duration
		reason  transport.Reason
	}{
		{"ok", nil, 1, transport.ActAck, 0, ""},
		{"first failure", boom, 1, transport.ActRetry, time.Second, ""},
		{"doubles", boom, 2, transport.ActRetry, 2 * time.Second, ""},
		{"capped", boom, 3, transport.ActRetry, 4 * time.Second, ""},
		{"last attempt", boom, 4, transport.ActDeadLetter, 0, transport.ReasonFailed},
		{"permanent", transport.Permanent(boom), 1, transport.ActDeadLetter, 0, transport.ReasonPermanent},
		{"malformed", transport.Permanent(transport.ErrMalformed), 1, transport.ActDeadLetter, 0, transport.ReasonMalformed},
		{"retry after", transport.RetryAfter(7*time.Second, boom), 1, transport.ActRetry, 7 * time.Second, ""},
		{"retry after on last", transport.RetryAfter(time.Second, boom), 4, transport.ActDeadLetter, 0, transport.ReasonFailed},
	} {
		out := transport.Decide(tc.err, tc.attempt, p, 0.5)
		if out.Action != tc.action || out.Delay != tc.delay || out.Reason != tc.reason {
			t.Errorf("%s: %+v", tc.name, out)
		}
	}
	if transport.Permanent(nil) != nil || transport.RetryAfter(time.Second, nil) != nil {
		t.Error("wrapping nil must give nil")
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	p := transport.RetryPolicy{MinBackoff: time.Second, MaxBackoff: time.Minute, Jitter: 0.2}
	lo, hi := p.Delay(1, 0), p.Delay(1, 0.999999)
	if lo != 800*time.Millisecond || hi < 1199*time.Millisecond || hi > 1200*time.Millisecond {
		t.Errorf("jitter range %v..%v, want 800ms..1.2s", lo, hi)
	}
	if d := p.Delay(30, 0.5); d != time.Minute {
		t.Errorf("attempt 30: %v, want the 1m cap", d)
	}
}

func FuzzDecodeHeaders(f *testing.F) {
	f.Add("1.0", "id", "/src", "t.v1", "2026-11-22T01:02:03Z", []byte(`{}`))
	f.Add("", "", "", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, spec, id, src, typ, ts string, body []byte) {
		h := map[string]string{"ce-specversion": spec, "ce-id": id, "ce-source": src, "ce-type": typ, "ce-time": ts}
		m, err := transport.DecodeHeaders(maps.All(h), body)
		if err != nil {
			if !errors.Is(err, transport.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if m.Validate() != nil {
			t.Fatalf("accepted an invalid message %+v", m)
		}
	})
}

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{
		"order_placed": true, "a": true, "A-1_b": true, strings.Repeat("a", 128): true,
		"": false, "1a": false, "_a": false, "a.b": false, "a b": false, "a*": false, "a>": false,
		"é": false, strings.Repeat("a", 129): false, "a@b": false, "[": false, "`": false,
	} {
		if got := transport.ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v", s, got)
		}
	}
}

// DecodeHeaderMap reads troupe's own headers by lookup and anything else by
// a pass over the map; both ways must give what DecodeHeaders gives.
func TestDecodeHeaderMapAgreesWithDecodeHeaders(t *testing.T) {
	in := transport.Message{
		ID: "id-1", Type: "order_placed.v2", Source: "/shop/orders",
		Time:          time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC),
		CorrelationID: "c", CausationID: "k", DataContentType: "application/json",
		Data: []byte(`{"x":1}`),
	}
	base := map[string][]string{}
	transport.EncodeHeaders(&in, func(k, v string) { base[k] = []string{v} })
	base["Nats-Msg-Id"] = []string{"id-1"}
	cases := map[string]func(h map[string][]string){
		"as troupe writes it":        func(map[string][]string) {},
		"an extension":               func(h map[string][]string) { h["ce-tenant"] = []string{"acme"} },
		"upper-case names":           func(h map[string][]string) { h["CE-SOURCE"] = h["ce-source"]; delete(h, "ce-source") },
		"an unknown header":          func(h map[string][]string) { h["X-Other"] = []string{"1"} },
		"an empty value list":        func(h map[string][]string) { h["ce-correlationid"] = nil },
		"upper-case required name":   func(h map[string][]string) { h["CE-ID"] = []string{"other"}; delete(h, "ce-id") },
		"no specversion":             func(h map[string][]string) { delete(h, "ce-specversion") },
		"upper-case bad specversion": func(h map[string][]string) { h["CE-SPECVERSION"] = []string{"0.3"}; delete(h, "ce-specversion") },
	}
	for name, change := range cases {
		h := maps.Clone(base)
		change(h)
		want, wantErr := transport.DecodeHeaders(func(yield func(k, v string) bool) {
			for k, vs := range h {
				if len(vs) > 0 && !yield(k, vs[0]) {
					return
				}
			}
		}, in.Data)
		got, err := transport.DecodeHeaderMap(h, in.Data, "Nats-Msg-Id")
		if (err == nil) != (wantErr == nil) {
			t.Errorf("%s: err %v, DecodeHeaders says %v", name, err, wantErr)
			continue
		}
		if got.ID != want.ID || got.Source != want.Source || got.Type != want.Type || !got.Time.Equal(want.Time) ||
			got.CorrelationID != want.CorrelationID || got.CausationID != want.CausationID ||
			got.DataContentType != want.DataContentType || !maps.Equal(got.Extensions, want.Extensions) ||
			string(got.Data) != string(want.Data) {
			t.Errorf("%s:\n got  %+v\n want %+v", name, got, want)
		}
	}
	// A skip list that repeats a name or names an attribute must not make
	// the lookups think every header is accounted for.
	withKey := maps.Clone(base)
	withKey["ce-partitionkey"] = []string{"k"}
	for _, skip := range [][]string{{"Nats-Msg-Id", "Nats-Msg-Id"}, {"Nats-Msg-Id", "ce-id"}} {
		got, err := transport.DecodeHeaderMap(withKey, in.Data, skip...)
		if err != nil || got.Extensions["partitionkey"] != "k" {
			t.Errorf("skip %q: extensions %v, err %v", skip, got.Extensions, err)
		}
	}
	// Without naming the message id header the map takes the slow pass, and
	// the result is the same.
	got, err := transport.DecodeHeaderMap(base, in.Data)
	if err != nil || got.ID != "id-1" || got.Extensions != nil {
		t.Errorf("without skip: %+v, %v", got, err)
	}
}

func BenchmarkDecodeHeaderMap(b *testing.B) {
	in := transport.Message{ID: "0193a5b8-7c1e-7d2f-9a3b-000000000001", Type: "order_placed.v1", Source: "/shop/orders",
		Time: time.Now(), CorrelationID: "0193a5b8-7c1e-7d2f-9a3b-000000000001"}
	h := map[string][]string{"Nats-Msg-Id": {in.ID}}
	transport.EncodeHeaders(&in, func(k, v string) { h[k] = []string{v} })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := transport.DecodeHeaderMap(h, nil, "Nats-Msg-Id"); err != nil {
			b.Fatal(err)
		}
	}
}

// Transports fill in defaults again on a subscription the app already
// filled in; that must not turn NoJitter into the default jitter.
func TestWithDefaultsTwiceKeepsNoJitter(t *testing.T) {
	s := transport.Subscription{Retry: transport.RetryPolicy{MinBackoff: time.Second, Jitter: transport.NoJitter}}
	twice := s.WithDefaults().WithDefaults()
	for _, rnd := range []float64{0, 0.999} {
		if d := twice.Retry.Delay(1, rnd); d != time.Second {
			t.Errorf("NoJitter, defaults filled in twice: delay %s with rnd %v, want exactly 1s", d, rnd)
		}
	}
	if once, again := s.WithDefaults(), s.WithDefaults().WithDefaults(); once != again {
		t.Errorf("WithDefaults is not idempotent:\n once  %+v\n twice %+v", once, again)
	}
}

func TestSource(t *testing.T) {
	if s := transport.Source("shop", "payment"); s != "/shop/payment" {
		t.Errorf("Source: %q", s)
	}
	if s := transport.Source("shop", ""); s != "/shop" {
		t.Errorf("Source outside a service: %q", s)
	}
	for _, tc := range []struct {
		source, app, service string
		ok                   bool
	}{
		{"/shop/payment", "shop", "payment", true},
		{"/shop", "shop", "", true},
		{"", "", "", false},
		{"/", "", "", false},
		{"/shop/", "", "", false},
		{"/shop/payment/extra", "", "", false},
		{"https://example.com/orders", "", "", false},
		{"urn:example:orders", "", "", false},
		{"shop/payment", "", "", false},
	} {
		app, svc, ok := transport.ParseSource(tc.source)
		if app != tc.app || svc != tc.service || ok != tc.ok {
			t.Errorf("ParseSource(%q) = %q, %q, %v; want %q, %q, %v", tc.source, app, svc, ok, tc.app, tc.service, tc.ok)
		}
	}
}

// An extension named like a CloudEvents core attribute, or like one troupe
// maps to a field of its own, would overwrite that attribute's header.
func TestValidateRefusesCoreAttributeExtensions(t *testing.T) {
	for _, name := range []string{"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time", "data",
		"correlationid", "causationid", "traceparent"} {
		m := transport.Message{ID: "1", Source: "/shop", Type: "orders.v1", Extensions: map[string]string{name: "x"}}
		if err := m.Validate(); !errors.Is(err, transport.ErrMalformed) || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("extension %q: %v, want an error wrapping ErrMalformed that names it", name, err)
		}
	}
	for _, name := range []string{"Tenant", "tenant-id", ""} {
		m := transport.Message{ID: "1", Source: "/shop", Type: "orders.v1", Extensions: map[string]string{name: "x"}}
		if err := m.Validate(); !errors.Is(err, transport.ErrMalformed) {
			t.Errorf("extension %q: %v, want an error wrapping ErrMalformed: CloudEvents names are lower-case letters and digits", name, err)
		}
	}
	ok := transport.Message{ID: "1", Source: "/shop", Type: "orders.v1",
		Extensions: map[string]string{"partitionkey": "k", "tracestate": "a=b", "tenant": "acme", "baggage": "x=1"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("extensions partitionkey, tracestate, tenant, baggage: %v", err)
	}
}

// The NATS and HTTP bindings percent-encode ce- header values; troupe
// writes and reads them so, and reads the double-quoted values of older
// writers.
func TestHeaderValueEscaping(t *testing.T) {
	for _, tc := range []struct{ raw, escaped string }{
		{"order-7", "order-7"},
		{"50% off", "50%25%20off"},
		{`say "hi"`, "say%20%22hi%22"},
		{"Euro € 😀", "Euro%20%E2%82%AC%20%F0%9F%98%80"},
	} {
		if got := transport.EscapeHeaderValue(tc.raw); got != tc.escaped {
			t.Errorf("EscapeHeaderValue(%q) = %q, want %q", tc.raw, got, tc.escaped)
		}
		h := map[string][]string{
			"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"/shop"}, "ce-type": {"orders.v1"},
			"ce-correlationid": {tc.escaped},
		}
		m, err := transport.DecodeHeaderMap(h, nil)
		if err != nil || m.CorrelationID != tc.raw {
			t.Errorf("DecodeHeaderMap of ce-correlationid %q: %q, %v; want %q", tc.escaped, m.CorrelationID, err, tc.raw)
		}
	}
	for escaped, raw := range map[string]string{
		`"quoted value"`: "quoted value", // an older writer's quoting
		"%e2%82%ac":      "€",            // lower-case hex
		"100%":           "100%",         // not an escape: kept as it came
		"%C0%A0":         "%C0%A0",       // not UTF-8: kept as it came
	} {
		h := map[string][]string{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"/shop"}, "ce-type": {"orders.v1"}, "ce-tenant": {escaped}}
		if m, err := transport.DecodeHeaderMap(h, nil); err != nil || m.Extensions["tenant"] != raw {
			t.Errorf("ce-tenant %q read as %q (%v), want %q", escaped, m.Extensions["tenant"], err, raw)
		}
	}
}

// datacontenttype travels as ce-datacontenttype on NATS (its binding) and
// as content-type elsewhere; a reader takes either, the attribute header
// first. traceparent may come as the W3C header or as ce-traceparent.
func TestDataContentTypeAndTraceParentHeaders(t *testing.T) {
	base := func() map[string][]string {
		return map[string][]string{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"/shop"}, "ce-type": {"orders.v1"}}
	}
	h := base()
	h["ce-datacontenttype"] = []string{"application/json"}
	h["content-type"] = []string{"text/plain"}
	h["ce-traceparent"] = []string{"00-0af7651916cd43dd8448eb211c80319c-b9c7c989f97918e1-01"}
	m, err := transport.DecodeHeaderMap(h, nil)
	if err != nil || m.DataContentType != "application/json" || m.TraceParent != h["ce-traceparent"][0] || len(m.Extensions) != 0 {
		t.Errorf("read %+v, %v: want ce-datacontenttype's type and ce-traceparent as TraceParent, no extensions", m, err)
	}
	h = base()
	h["content-type"] = []string{"application/json"}
	h["traceparent"] = []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	h["ce-traceparent"] = []string{"00-0af7651916cd43dd8448eb211c80319c-b9c7c989f97918e1-01"}
	if m, err := transport.DecodeHeaderMap(h, nil); err != nil || m.DataContentType != "application/json" || m.TraceParent != h["traceparent"][0] {
		t.Errorf("read %+v, %v: want content-type's type and the W3C traceparent", m, err)
	}
}
