package troupe_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/dashboard"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/metrics"
	"github.com/troupe-go/troupe/tracing"
	"github.com/troupe-go/troupe/troupetest"
)

type observed struct {
	N int `json:"n"`
}

type observedFailed struct {
	N int `json:"n"`
}

var (
	observedTopic       = troupe.NewTopic[observed]("observed", 1)
	observedFailedTopic = troupe.NewTopic[observedFailed]("observed_failed", 1)
)

// declareObserved declares one subscription per way an attempt can end,
// each to the same topic, so that one event takes every path at once.
// Handlers decide by attempt number alone, so troupetest.Deliver replays
// them exactly.
func declareObserved(app *troupe.App) {
	svc := app.Service("obs").Publishes(observedTopic, observedFailedTopic)
	fast := []troupe.SubscribeOption{troupe.Backoff(10*time.Millisecond, 10*time.Millisecond), troupe.Jitter(0)}
	sub := func(name string, h troupe.Handler[observed], opts ...troupe.SubscribeOption) {
		troupe.Subscribe(svc, observedTopic, name, h, append(slices.Clone(fast), opts...)...)
	}
	sub("ok", func(context.Context, troupe.Event[observed]) error { return nil })
	sub("flaky", func(_ context.Context, ev troupe.Event[observed]) error {
		if ev.Attempt == 1 {
			return errors.New("flaky: first attempt fails")
		}
		return nil
	})
	sub("refuses", func(context.Context, troupe.Event[observed]) error {
		return troupe.Permanent(errors.New("refused for good"))
	})
	sub("down", func(context.Context, troupe.Event[observed]) error {
		return errors.New("dependency down")
	}, troupe.MaxAttempts(2))
	sub("declines", func(context.Context, troupe.Event[observed]) error {
		return troupe.Permanent(errors.New("declined"))
	}, troupe.OnFailure(observedFailedTopic, func(ev troupe.Event[observed], _ error) observedFailed {
		return observedFailed{N: ev.Data.N}
	}))
	sub("panics", func(_ context.Context, ev troupe.Event[observed]) error {
		if ev.Attempt == 1 {
			panic("first attempt panics")
		}
		return nil
	})
}

// seen is one attempt as an observer reported it.
type seen struct {
	sub     string
	attempt int
	outcome string
}

func (s seen) String() string { return fmt.Sprintf("%s#%d:%s", s.sub, s.attempt, s.outcome) }

func sortedSeen(ss []seen) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	slices.Sort(out)
	return out
}

// The same deliveries, on the embedded broker, go through every observer
// troupe ships (journal, metrics, tracing, dashboard) and a Settled
// middleware of the test's own, which is told the outcome the pipeline
// decided; each observer must report exactly those outcomes, and
// troupetest.Deliver must decide the same for the same attempts. Before the
// outcome was decided once, each observer decided it again from the
// handler's error with a policy of its own.
func TestObserversReportTheDecidedOutcome(t *testing.T) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: uniqueName("observers"), HTTPAddr: "127.0.0.1:0"}))
	declareObserved(app)

	var (
		mu   sync.Mutex
		told = map[string][]seen{} // by correlation id
	)
	app.Use(troupe.Middleware{Name: "reference", Settled: func(sub *troupe.Subscription) troupe.SettledFunc {
		return func(_ context.Context, s troupe.Settlement) {
			mu.Lock()
			defer mu.Unlock()
			d := s.Delivery
			told[d.CorrelationID] = append(told[d.CorrelationID], seen{sub.String(), d.Attempt, string(s.Outcome)})
		}
	}})
	journal.Install(app, journal.FlushDelay(0))
	reg := prometheus.NewRegistry()
	if err := metrics.Install(app, metrics.WithRegistry(reg), metrics.WithPath("")); err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracing.Install(app, tp)
	if _, err := dashboard.Install(app); err != nil {
		t.Fatal(err)
	}
	troupetest.Start(t, app)

	// A valid event takes every path; one whose data does not decode is
	// dead-lettered by every subscription (and compensated by none).
	ctx := troupe.WithCorrelationID(app.Context(t.Context()), "valid")
	if err := troupe.Publish(ctx, observedTopic, observed{N: 1}); err != nil {
		t.Fatal(err)
	}
	bad, err := troupe.Encode(troupe.WithCorrelationID(app.Context(t.Context()), "undecodable"), observedTopic, observed{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	bad[0].Data = []byte(`{"n":"two"}`)
	if err := app.PublishMessages(app.Context(t.Context()), bad...); err != nil {
		t.Fatal(err)
	}

	want := map[string][]string{
		"valid": {
			"obs.declines#1:compensated",
			"obs.down#1:retried", "obs.down#2:dead-lettered",
			"obs.flaky#1:retried", "obs.flaky#2:handled",
			"obs.ok#1:handled",
			"obs.panics#1:retried", "obs.panics#2:handled",
			"obs.refuses#1:dead-lettered",
		},
		"undecodable": {
			"obs.declines#1:dead-lettered", "obs.down#1:dead-lettered", "obs.flaky#1:dead-lettered",
			"obs.ok#1:dead-lettered", "obs.panics#1:dead-lettered", "obs.refuses#1:dead-lettered",
		},
	}
	reference := func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]string{}
		for corr, ss := range told {
			out[corr] = sortedSeen(ss)
		}
		return out
	}
	waitUntil(t, "the reference middleware is told every attempt", func() (bool, string) {
		got := reference()
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})

	t.Run("journal", func(t *testing.T) {
		for corr, w := range want {
			waitUntil(t, "journal of "+corr, func() (bool, string) {
				es, err := journal.Trace(t.Context(), app, corr)
				if err != nil && !errors.Is(err, journal.ErrNotFound) {
					return false, err.Error()
				}
				var ss []seen
				for _, e := range es {
					if !e.IsPublish() {
						ss = append(ss, seen{e.Subscription, e.Attempt, string(e.Outcome)})
					}
				}
				got := sortedSeen(ss)
				return slices.Equal(got, w), fmt.Sprint(got)
			})
		}
	})

	t.Run("tracing", func(t *testing.T) {
		waitUntil(t, "a consumer span per attempt", func() (bool, string) {
			got := map[string][]seen{}
			for _, s := range spans.Ended() {
				if !strings.HasPrefix(s.Name(), "process ") {
					continue
				}
				a := map[string]string{}
				for _, kv := range s.Attributes() {
					a[string(kv.Key)] = kv.Value.Emit()
				}
				var attempt int
				fmt.Sscan(a[string(tracing.AttrAttempt)], &attempt)
				corr := a["messaging.message.conversation_id"]
				got[corr] = append(got[corr], seen{a["messaging.destination.subscription.name"], attempt, a[string(tracing.AttrOutcome)]})
			}
			sorted := map[string][]string{}
			for corr, ss := range got {
				sorted[corr] = sortedSeen(ss)
			}
			return fmt.Sprint(sorted) == fmt.Sprint(want), fmt.Sprint(sorted)
		})
	})

	// Counters add up both events' attempts, per subscription.
	counts := map[string]map[troupe.Outcome]int{}
	for _, ss := range want {
		for _, s := range ss {
			sub, rest, _ := strings.Cut(s, "#")
			_, outcome, _ := strings.Cut(rest, ":")
			if counts[sub] == nil {
				counts[sub] = map[troupe.Outcome]int{}
			}
			counts[sub][troupe.Outcome(outcome)]++
		}
	}

	t.Run("metrics", func(t *testing.T) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[troupe.Outcome]int{}
		metric := map[string]troupe.Outcome{
			"troupe_events_retried_total": troupe.Retried, "troupe_events_dead_lettered_total": troupe.DeadLettered,
			"troupe_events_compensated_total": troupe.Compensated,
		}
		handledTotal := map[string]int{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				sub := labels["service"] + "." + labels["subscription"]
				n := int(m.GetCounter().GetValue())
				if f.GetName() == "troupe_events_handled_total" {
					handledTotal[sub] = n // every attempt
				}
				if o, ok := metric[f.GetName()]; ok && n > 0 {
					if got[sub] == nil {
						got[sub] = map[troupe.Outcome]int{}
					}
					got[sub][o] = n
				}
			}
		}
		for sub, c := range counts {
			attempts := 0
			for o, n := range c {
				attempts += n
				if o != troupe.Handled && got[sub][o] != n {
					t.Errorf("%s: %s counted %d times, want %d", sub, o, got[sub][o], n)
				}
			}
			if handledTotal[sub] != attempts {
				t.Errorf("%s: troupe_events_handled_total %d, want every attempt: %d", sub, handledTotal[sub], attempts)
			}
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		res, err := http.Get("http://" + app.HTTPAddr() + "/ui/api/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var stats struct {
			Subscriptions []struct {
				Subscription                                          string
				Attempts, Handled, Retried, DeadLettered, Compensated int
			}
		}
		if err := json.NewDecoder(res.Body).Decode(&stats); err != nil {
			t.Fatal(err)
		}
		for _, s := range stats.Subscriptions {
			c := counts[s.Subscription]
			got := map[troupe.Outcome]int{troupe.Handled: s.Handled, troupe.Retried: s.Retried, troupe.DeadLettered: s.DeadLettered, troupe.Compensated: s.Compensated}
			for o, n := range got {
				if n != c[o] {
					t.Errorf("%s: %s %d, want %d", s.Subscription, o, n, c[o])
				}
			}
		}
	})

	t.Run("troupetest", func(t *testing.T) {
		rec := troupe.New(troupetest.Config(t, troupe.Config{Name: "observers", Transport: troupetest.NewRecorder()}))
		declareObserved(rec)
		for _, s := range want["valid"] {
			sub, rest, _ := strings.Cut(s, "#")
			var attempt int
			var outcome string
			fmt.Sscanf(strings.Replace(rest, ":", " ", 1), "%d %s", &attempt, &outcome)
			res := troupetest.Deliver(t, rec, sub, observed{N: 1}, troupetest.WithAttempt(attempt))
			if string(res.Outcome) != outcome {
				t.Errorf("troupetest.Deliver to %s, attempt %d: %s (%v), the broker's pipeline decided %s", sub, attempt, res.Outcome, res.Err, outcome)
			}
		}
	})
}

// An attempt cut off by a hard stop is reported as interrupted, not as a
// failure to retry or dead-letter, and is delivered again.
func TestHardStopInterruptsTheAttempt(t *testing.T) {
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: uniqueName("interrupt")}))
	started := make(chan struct{}, 1)
	troupe.Subscribe(app.Service("obs").Publishes(observedTopic), observedTopic, "hangs",
		func(ctx context.Context, _ troupe.Event[observed]) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}, troupe.MaxAttempts(1))
	outcomes := make(chan troupe.Settlement, 1)
	app.Use(troupe.Middleware{Name: "reference", Settled: func(*troupe.Subscription) troupe.SettledFunc {
		return func(_ context.Context, s troupe.Settlement) { outcomes <- s }
	}})
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := troupe.Publish(app.Context(t.Context()), observedTopic, observed{N: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(troupetest.DefaultTimeout):
		t.Fatal("the handler never started")
	}
	stop, cancel := context.WithCancel(context.Background())
	cancel() // a stop that does not wait for handlers
	_ = app.Stop(stop)
	select {
	case s := <-outcomes:
		if s.Outcome != troupe.Interrupted || !errors.Is(s.Err, context.Canceled) {
			t.Errorf("outcome %s (%v), want interrupted by the stop", s.Outcome, s.Err)
		}
	case <-time.After(troupetest.DefaultTimeout):
		t.Fatal("no outcome told")
	}
}

// waitUntil polls cond until it holds, failing with its last word after
// troupetest.DefaultTimeout.
func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(troupetest.DefaultTimeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last: %s", what, troupetest.DefaultTimeout, last)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("%s: test ended; last: %s", what, last)
		}
	}
}
