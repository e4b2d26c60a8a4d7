// Package metrics exposes a troupe app's metrics to Prometheus: events
// published, handled, failed, retried and dead-lettered, how long handlers
// take, and how far each subscription is behind, served at GET /metrics on
// the app's HTTP server.
//
// Turn it on with [Install] before the app starts:
//
//	app := troupe.New(troupe.Config{Name: "shop"})
//	// ... services and subscriptions ...
//	if err := metrics.Install(app); err != nil { ... }
//	app.Main() // serves GET /metrics on --http, default localhost:8080
//
// An app without it has no metrics code on its paths: the troupe package
// does not import Prometheus.
//
// # Metrics
//
// Every metric has the label app (the app's name). Counters and the
// histogram of a subscription also have service (the subscription's
// service), subscription (its name within the service) and topic (the wire
// type it reads, "<topic>.v<N>"); their series exist, at 0, from the start
// for every subscription the process runs.
//
//	troupe_events_published_total{app,service,topic}   events the broker confirmed; service "" for publishes outside a service
//	troupe_publish_errors_total{app,service,topic}     events whose publish returned an error (some may be stored all the same)
//	troupe_events_handled_total{…,subscription,…}      attempts that ran to an end, successful or not
//	troupe_events_failed_total{…}                      attempts that returned an error: retried + dead-lettered + interrupted
//	troupe_events_retried_total{…}                     failed attempts the broker will deliver again
//	troupe_events_dead_lettered_total{…}               failed attempts that sent the event to the dead letters
//	troupe_events_compensated_total{…}                 events settled by their subscription's OnFailure event
//	troupe_handler_duration_seconds{…}                 histogram of attempt durations (buckets: DefaultBuckets)
//	troupe_consumer_lag{…}                             events of the subscription not yet finished, asked of the broker at each scrape
//	troupe_consumer_lag_errors_total{app,service,subscription}  scrapes where the broker could not say
//
// Each attempt is counted by the outcome troupe decided for it once (see
// troupe.Middleware.Settled): retried or dead-lettered (both also counted
// as failed), compensated (an OnFailure event settled it, so the broker
// acknowledges it: not failed), or interrupted by a stop or a lost
// connection (failed, neither retried nor dead-lettered: the event is
// delivered again). Messages a transport rejects before any handler sees
// them (no CloudEvents attributes, too large, another topic's type) never
// reach the middleware.
//
// # Lag
//
// troupe_consumer_lag is read when Prometheus scrapes, through the
// transport's [transport.Lagger], for every subscription of the app, also
// those of services this process does not run (so a subscription nobody
// consumes shows its backlog growing). Every process of an app therefore
// reports the same numbers: aggregate them with max, not sum. What it
// counts depends on the broker: on NATS (and the embedded broker) the
// events not yet delivered plus those delivered and not acknowledged; on
// RabbitMQ the events ready in the subscription's queue plus those waiting
// in its retry queues. A transport without Lagger has no lag series.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// DefaultBuckets are the handler duration histogram's buckets, in seconds:
// from 1ms to 30s, the default deadline of an attempt.
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// DefaultPath is the route of the metrics endpoint.
const DefaultPath = "GET /metrics"

// DefaultLagTimeout bounds the broker queries for lag in one scrape.
const DefaultLagTimeout = 5 * time.Second

// Registry is where the metrics are registered and gathered from;
// *prometheus.Registry is one.
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Option tunes [Install]. Each documents its default.
type Option func(*config)

type config struct {
	reg        Registry
	path       string
	buckets    []float64
	lagTimeout time.Duration
}

// WithRegistry registers the metrics in reg and serves reg at the metrics
// route. Default: a new registry for the app, with the Go runtime and
// process collectors added; with WithRegistry, add those yourself if reg
// lacks them. Apps sharing one registry are told apart by the app label.
func WithRegistry(reg Registry) Option { return func(c *config) { c.reg = reg } }

// WithPath sets the route of the metrics endpoint on the app's HTTP server,
// as http.ServeMux takes it. Default [DefaultPath]. "" serves nothing, for
// apps that serve their registry (see [WithRegistry]) some other way.
func WithPath(pattern string) Option { return func(c *config) { c.path = pattern } }

// WithBuckets sets the buckets of troupe_handler_duration_seconds, in
// seconds, increasing. Default [DefaultBuckets].
func WithBuckets(b []float64) Option { return func(c *config) { c.buckets = b } }

// WithLagTimeout bounds the broker queries for troupe_consumer_lag in one
// scrape; subscriptions the broker has not answered for by then are left
// out of that scrape and counted in troupe_consumer_lag_errors_total.
// Default [DefaultLagTimeout]. Keep it below Prometheus's scrape_timeout.
func WithLagTimeout(d time.Duration) Option { return func(c *config) { c.lagTimeout = d } }

// Install registers the metrics middleware of app (see [troupe.App.Use])
// and, unless [WithPath] says "", the route GET /metrics on the app's HTTP
// server, which makes the app serve HTTP (on Config.HTTPAddr, default
// localhost:8080) even when no service has routes. Call it before Start,
// once per app.
//
// It fails when the registry refuses the metrics, typically because the
// same app was installed twice on one registry, or when an option is
// invalid; then the app is left unchanged. A route that conflicts with
// another of the app's makes Start fail.
func Install(app *troupe.App, opts ...Option) error {
	c := config{path: DefaultPath, buckets: DefaultBuckets, lagTimeout: DefaultLagTimeout}
	for _, o := range opts {
		o(&c)
	}
	if c.lagTimeout <= 0 {
		return fmt.Errorf("metrics: lag timeout %s: use a positive duration", c.lagTimeout)
	}
	for i := 1; i < len(c.buckets); i++ {
		if c.buckets[i] <= c.buckets[i-1] {
			return fmt.Errorf("metrics: buckets %v: list them in increasing order", c.buckets)
		}
	}
	own := c.reg == nil
	if own {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		c.reg = reg
	}
	m := newSet(app, c)
	var done []prometheus.Collector
	for _, col := range m.collectors() {
		if err := c.reg.Register(col); err != nil {
			for _, d := range done {
				c.reg.Unregister(d)
			}
			return fmt.Errorf("metrics: register for app %s: %w (was Install called twice for this app on one registry?)", app.Name(), err)
		}
		done = append(done, col)
	}
	app.Use(troupe.Middleware{Name: "metrics", Publish: m.publish, Settled: m.settled})
	if c.path != "" {
		var h http.Handler = promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{
			ErrorLog:      slogAdapter{app},
			ErrorHandling: promhttp.ContinueOnError,
		})
		if own {
			h = promhttp.InstrumentMetricHandler(c.reg, h)
		}
		app.HandleHTTP(c.path, h)
	}
	return nil
}

// set is the metrics of one app.
type set struct {
	app                                             *troupe.App
	published, publishErrors                        *prometheus.CounterVec
	handled, failed, retried, deadLets, compensated *prometheus.CounterVec
	duration                                        *prometheus.HistogramVec
	lag                                             *lagCollector

	pubMu   sync.RWMutex
	pubKeys map[pubKey]pubCounters // by source and type, to skip label hashing per event
}

type pubKey struct{ source, typ string }

type pubCounters struct{ ok, failed prometheus.Counter }

func newSet(app *troupe.App, c config) *set {
	constLabels := prometheus.Labels{"app": app.Name()}
	subLabels := []string{"service", "subscription", "topic"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "troupe", Name: name, Help: help, ConstLabels: constLabels,
		}, labels)
	}
	m := &set{
		app:           app,
		published:     counter("events_published_total", "Events published and confirmed by the broker.", []string{"service", "topic"}),
		publishErrors: counter("publish_errors_total", "Events whose publish returned an error; some may have been stored all the same.", []string{"service", "topic"}),
		handled:       counter("events_handled_total", "Attempts at handling an event that ran to an end, successful or not.", subLabels),
		failed:        counter("events_failed_total", "Attempts at handling an event that returned an error (retried plus dead-lettered).", subLabels),
		retried:       counter("events_retried_total", "Failed attempts after which the broker delivers the event again.", subLabels),
		deadLets:      counter("events_dead_lettered_total", "Failed attempts that sent the event to the subscription's dead letters (last attempt, or a permanent error).", subLabels),
		compensated:   counter("events_compensated_total", "Events whose handler failed for good and whose subscription published its OnFailure event instead of dead-lettering them.", subLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "troupe", Name: "handler_duration_seconds", Help: "How long an attempt at handling an event took, decoding included.",
			ConstLabels: constLabels, Buckets: c.buckets,
		}, subLabels),
		pubKeys: make(map[pubKey]pubCounters),
	}
	m.lag = &lagCollector{
		app: app, timeout: c.lagTimeout,
		desc: prometheus.NewDesc("troupe_consumer_lag",
			"Events of the subscription the broker holds and the subscription has not finished, read at scrape time.",
			subLabels, constLabels),
		errors: counter("consumer_lag_errors_total", "Scrapes where the broker could not tell a subscription's lag.", []string{"service", "subscription"}),
	}
	return m
}

func (m *set) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.published, m.publishErrors, m.handled, m.failed, m.retried, m.deadLets, m.compensated, m.duration, m.lag, m.lag.errors}
}

// publish counts events after the broker answered for them.
func (m *set) publish(next troupe.PublishFunc) troupe.PublishFunc {
	return func(ctx context.Context, msgs []*transport.Message) error {
		err := next(ctx, msgs)
		for _, msg := range msgs {
			c := m.pubCounters(msg.Source, msg.Type)
			if err != nil {
				c.failed.Inc()
			} else {
				c.ok.Inc()
			}
		}
		return err
	}
}

func (m *set) pubCounters(source, typ string) pubCounters {
	k := pubKey{source, typ}
	m.pubMu.RLock()
	c, ok := m.pubKeys[k]
	m.pubMu.RUnlock()
	if ok {
		return c
	}
	svc := serviceOf(source, m.app.Name())
	c = pubCounters{ok: m.published.WithLabelValues(svc, typ), failed: m.publishErrors.WithLabelValues(svc, typ)}
	m.pubMu.Lock()
	if len(m.pubKeys) < 10000 { // sources come from the wire of foreign publishers too: bound the cache
		m.pubKeys[k] = c
	}
	m.pubMu.Unlock()
	return c
}

// serviceOf returns the service of an event source "/<app>/<service>", or
// "" for the app itself, another app, or a source of another shape.
func serviceOf(source, app string) string {
	a, svc, ok := transport.ParseSource(source)
	if !ok || a != app {
		return ""
	}
	return svc
}

// settled times and counts every attempt, by the outcome troupe decided.
// The label children are resolved once per subscription, at start.
func (m *set) settled(sub *troupe.Subscription) troupe.SettledFunc {
	lv := []string{sub.Service().Name(), sub.Name(), sub.Topic()}
	handled, failed := m.handled.WithLabelValues(lv...), m.failed.WithLabelValues(lv...)
	retried, dead := m.retried.WithLabelValues(lv...), m.deadLets.WithLabelValues(lv...)
	took, compensated := m.duration.WithLabelValues(lv...), m.compensated.WithLabelValues(lv...)
	return func(_ context.Context, s troupe.Settlement) {
		took.Observe(s.Took.Seconds())
		handled.Inc()
		switch s.Outcome {
		case troupe.Compensated:
			compensated.Inc()
		case troupe.Retried:
			failed.Inc()
			retried.Inc()
		case troupe.DeadLettered:
			failed.Inc()
			dead.Inc()
		case troupe.Interrupted:
			failed.Inc()
		}
	}
}

// lagCollector asks the broker for every subscription's lag when scraped.
type lagCollector struct {
	app     *troupe.App
	timeout time.Duration
	desc    *prometheus.Desc
	errors  *prometheus.CounterVec
}

func (l *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

// lagQueries is how many subscriptions one scrape asks the broker about at
// once.
const lagQueries = 4

func (l *lagCollector) Collect(ch chan<- prometheus.Metric) {
	lg, ok := l.app.Transport().(transport.Lagger)
	if !ok {
		return // not started, or a transport that cannot tell
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	sem := make(chan struct{}, lagQueries)
	var wg sync.WaitGroup
	for _, svc := range l.app.Services() {
		for _, sub := range svc.Subscriptions() {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ref := transport.SubscriptionRef{Service: svc.Name(), Name: sub.Name()}
				n, err := lg.Lag(ctx, ref)
				switch {
				case errors.Is(err, transport.ErrClosed):
					return // the app stopped
				case err != nil:
					l.errors.WithLabelValues(ref.Service, ref.Name).Inc()
					l.app.Logger().Warn("metrics: could not read a subscription's lag", "subscription", ref.String(), "err", err)
					return
				}
				ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, float64(n), ref.Service, ref.Name, sub.Topic())
			})
		}
	}
	wg.Wait()
}

// slogAdapter sends promhttp's errors to the app's logger.
type slogAdapter struct{ app *troupe.App }

func (s slogAdapter) Println(v ...any) {
	s.app.Logger().Error("metrics: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
