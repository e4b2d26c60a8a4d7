package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/metrics"
	"github.com/troupe-go/troupe/troupetest"
)

type order struct {
	ID string `json:"id"`
}

var (
	orderPlaced  = troupe.NewTopic[order]("order_placed", 1)
	orderCharged = troupe.NewTopic[order]("order_charged", 1)
)

// billingApp declares orders (publishing order_placed), billing.charge
// (whose outcome depends on the order id) and audit.log, a subscription of
// a service that does not run in this process, so its events wait.
func billingApp(t *testing.T, cfg troupe.Config) *troupe.App {
	cfg.Services = []string{"orders", "billing"}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	app := troupe.New(troupetest.Config(t, cfg))
	app.Service("orders").Publishes(orderPlaced)
	var mu sync.Mutex
	seen := map[string]int{}
	troupe.Subscribe(app.Service("billing").Publishes(orderCharged), orderPlaced, "charge",
		func(ctx context.Context, ev troupe.Event[order]) error {
			mu.Lock()
			seen[ev.Data.ID]++
			n := seen[ev.Data.ID]
			mu.Unlock()
			switch ev.Data.ID {
			case "flaky": // fails once, then succeeds
				if n == 1 {
					return errors.New("gateway timeout")
				}
			case "bad": // dead-lettered at once
				return troupe.Permanent(errors.New("unknown customer"))
			case "down": // fails both attempts
				time.Sleep(5 * time.Millisecond) // shows in the duration histogram
				return errors.New("card network down")
			case "ok", "ok2":
				return troupe.Publish(ctx, orderCharged, ev.Data)
			}
			return nil
		}, troupe.Emits(orderCharged), troupe.MaxAttempts(2), troupe.Backoff(10*time.Millisecond, 10*time.Millisecond))
	troupe.Subscribe(app.Service("audit"), orderPlaced, "log",
		func(context.Context, troupe.Event[order]) error { return nil })
	return app
}

// TestScrape handles, retries, fails and dead-letters events on the
// embedded broker, then scrapes GET /metrics over HTTP and checks every
// number.
func TestScrape(t *testing.T) {
	app := billingApp(t, troupe.Config{Name: "metricsapp"})
	if err := metrics.Install(app); err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)

	ctx := app.Context(t.Context())
	orders := []order{{ID: "ok"}, {ID: "flaky"}, {ID: "bad"}, {ID: "down"}, {ID: "ok2"}}
	if err := troupe.PublishBatch(ctx, orderPlaced, orders); err != nil {
		t.Fatal(err)
	}
	// Attempts: ok 1, flaky 2, bad 1, down 2, ok2 1.
	charge := map[string]string{"app": "metricsapp", "service": "billing", "subscription": "charge", "topic": "order_placed.v1"}
	fams := scrapeUntil(t, app, func(f families) bool {
		return f.value("troupe_events_handled_total", charge) == 7 &&
			f.value("troupe_consumer_lag", charge) == 0
	})
	checks := []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{"troupe_events_published_total", map[string]string{"app": "metricsapp", "service": "", "topic": "order_placed.v1"}, 5},
		{"troupe_events_published_total", map[string]string{"app": "metricsapp", "service": "billing", "topic": "order_charged.v1"}, 2},
		{"troupe_publish_errors_total", map[string]string{"app": "metricsapp", "service": "billing", "topic": "order_charged.v1"}, 0},
		{"troupe_events_handled_total", charge, 7},
		{"troupe_events_failed_total", charge, 4},
		{"troupe_events_retried_total", charge, 2},
		{"troupe_events_dead_lettered_total", charge, 2},
		{"troupe_handler_duration_seconds", charge, 7}, // the histogram's count
		{"troupe_consumer_lag", charge, 0},
		{"troupe_consumer_lag", map[string]string{"app": "metricsapp", "service": "audit", "subscription": "log", "topic": "order_placed.v1"}, 5},
	}
	for _, c := range checks {
		if got := fams.value(c.metric, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
	// Two attempts slept 5ms: at least two observations above 5ms, and the
	// buckets below 1ms cannot hold all seven.
	h := fams.metric("troupe_handler_duration_seconds", charge).GetHistogram()
	if h.GetSampleSum() < 0.010 {
		t.Errorf("duration sum %vs, want at least 10ms", h.GetSampleSum())
	}
	if len(h.GetBucket()) != len(metrics.DefaultBuckets)+1 {
		t.Errorf("%d buckets, want DefaultBuckets' %d and +Inf", len(h.GetBucket()), len(metrics.DefaultBuckets))
	}
	// Series of the subscription that runs here exist, the one of the
	// service that runs elsewhere has only its lag.
	if fams.metric("troupe_events_handled_total", map[string]string{"service": "audit"}) != nil {
		t.Error("audit.log does not run in this process but has a handled series")
	}
	// The app's own registry has the Go runtime collectors.
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no go_goroutines in the app's registry")
	}
	dls := troupetest.DeadLetters(t, app, "billing.charge", 2)
	if len(dls) != 2 {
		t.Errorf("%d dead letters, want 2", len(dls))
	}
}

// TestOwnRegistry: with WithRegistry the metrics go to the caller's
// registry, which gains no Go collectors, and WithPath("") serves nothing.
func TestOwnRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := billingApp(t, troupe.Config{Name: "metricsreg", HTTPAddr: "off"})
	if err := metrics.Install(app, metrics.WithRegistry(reg), metrics.WithPath("")); err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)
	if err := troupe.Publish(app.Context(t.Context()), orderPlaced, order{ID: "ok"}); err != nil {
		t.Fatal(err)
	}
	charge := map[string]string{"app": "metricsreg", "service": "billing", "subscription": "charge"}
	deadline := time.Now().Add(troupetest.DefaultTimeout)
	for {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		f := families{}
		for _, mf := range mfs {
			f[mf.GetName()] = mf
		}
		if f.value("troupe_events_handled_total", charge) == 1 {
			if _, ok := f["go_goroutines"]; ok {
				t.Error("Install added Go collectors to the caller's registry")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("handled_total never reached 1")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A second Install of the same app on the same registry is refused.
	err := metrics.Install(app, metrics.WithRegistry(reg), metrics.WithPath(""))
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Install: %v, want a refusal", err)
	}
}

// TestBadOptions: invalid options fail Install and leave the app alone.
func TestBadOptions(t *testing.T) {
	app := troupe.New(troupe.Config{Name: "bad"})
	if err := metrics.Install(app, metrics.WithBuckets([]float64{1, 0.5})); err == nil {
		t.Error("decreasing buckets accepted")
	}
	if err := metrics.Install(app, metrics.WithLagTimeout(-time.Second)); err == nil {
		t.Error("negative lag timeout accepted")
	}
}

type families map[string]*dto.MetricFamily

// metric returns the first metric of family name whose labels include
// want, or nil.
func (f families) metric(name string, want map[string]string) *dto.Metric {
	for _, m := range f[name].GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range want {
			if have[k] != v {
				match = false
				break
			}
		}
		if match {
			return m
		}
	}
	return nil
}

// value returns a counter's or gauge's value, or a histogram's count; -1
// when there is no such series.
func (f families) value(name string, want map[string]string) float64 {
	m := f.metric(name, want)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}

// scrape gets GET /metrics from the app's HTTP server and parses the text
// format.
func scrape(t *testing.T, app *troupe.App) families {
	t.Helper()
	resp, err := http.Get("http://" + app.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// scrapeUntil scrapes until cond holds, failing the test after
// troupetest.DefaultTimeout with what the last scrape said.
func scrapeUntil(t *testing.T, app *troupe.App, cond func(families) bool) families {
	t.Helper()
	deadline := time.Now().Add(troupetest.DefaultTimeout)
	for {
		f := scrape(t, app)
		if cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for name, mf := range f {
				if strings.HasPrefix(name, "troupe_") {
					for _, m := range mf.GetMetric() {
						fmt.Fprintf(&b, "%s %v %v\n", name, m.GetLabel(), m.GetCounter().GetValue()+m.GetGauge().GetValue())
					}
				}
			}
			t.Fatalf("metrics never reached the expected state; last scrape:\n%s", b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublishErrors: events whose publish fails are counted apart from
// the published ones; a transport without Lagger has no lag series.
func TestPublishErrors(t *testing.T) {
	rec := troupetest.NewRecorder()
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "metricspub", Transport: rec, HTTPAddr: "127.0.0.1:0"}))
	app.Service("orders").Publishes(orderPlaced)
	if err := metrics.Install(app); err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)
	ctx := app.Context(t.Context())
	if err := troupe.PublishBatch(ctx, orderPlaced, []order{{ID: "1"}, {ID: "2"}}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(t.Context()); err != nil { // the broker goes away under the app
		t.Fatal(err)
	}
	if err := troupe.PublishBatch(ctx, orderPlaced, []order{{ID: "3"}, {ID: "4"}, {ID: "5"}}); err == nil {
		t.Fatal("publish on a closed transport succeeded")
	}
	f := scrape(t, app)
	edge := map[string]string{"app": "metricspub", "service": "", "topic": "order_placed.v1"}
	if got := f.value("troupe_events_published_total", edge); got != 2 {
		t.Errorf("published %v, want 2", got)
	}
	if got := f.value("troupe_publish_errors_total", edge); got != 3 {
		t.Errorf("publish errors %v, want 3", got)
	}
	if _, ok := f["troupe_consumer_lag"]; ok {
		t.Error("lag series on a transport without Lagger")
	}
}

// TestCompensatedCounter: events settled by OnFailure count as compensated,
// not as failed.
func TestCompensatedCounter(t *testing.T) {
	refused := troupe.NewTopic[order]("charge_refused", 1)
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "metricscomp", HTTPAddr: "127.0.0.1:0"}))
	app.Service("orders").Publishes(orderPlaced)
	troupe.Subscribe(app.Service("billing").Publishes(refused), orderPlaced, "charge",
		func(context.Context, troupe.Event[order]) error { return troupe.Permanent(errors.New("card refused")) },
		troupe.OnFailure(refused, func(ev troupe.Event[order], _ error) order { return ev.Data }))
	if err := metrics.Install(app); err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)
	if err := troupe.PublishBatch(app.Context(t.Context()), orderPlaced, []order{{ID: "a"}, {ID: "b"}}); err != nil {
		t.Fatal(err)
	}
	charge := map[string]string{"app": "metricscomp", "service": "billing", "subscription": "charge", "topic": "order_placed.v1"}
	fams := scrapeUntil(t, app, func(f families) bool { return f.value("troupe_events_compensated_total", charge) == 2 })
	if h, f := fams.value("troupe_events_handled_total", charge), fams.value("troupe_events_failed_total", charge); h != 2 || f != 0 {
		t.Errorf("handled %v, failed %v; want 2 and 0", h, f)
	}
}
