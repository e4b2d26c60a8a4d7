// Command bench measures troupe beside Watermill and the raw broker clients,
// on the same brokers, with the same durability, in one run, and writes the
// results to BENCHMARKS.md. See README.md.
//
//	go run .            # the full run (long)
//	go run . --quick    # a smaller run, under five minutes on two cores
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Metrics are the numbers one run of a measurement produces, by name
// ("publish", "consume", "p99", ...).
type Metrics map[string]float64

// Measure is one thing measured several times.
type Measure struct {
	Scenario string // "throughput", "flow", "scaling", "rss"
	Broker   string // "embedded", "rabbitmq", "nats"
	Case     string // what varies within the scenario ("1 topic", "backlog 10k")
	Client   string // "troupe", "watermill", "raw", ...
	Runs     int
	Run      func(ctx context.Context) (Metrics, error)

	samples map[string][]float64
	err     error
	took    time.Duration // all runs, setup and cleanup included
}

// Stat returns the summary of one metric over the measure's runs.
func (m *Measure) Stat(metric string) Stat { return Summarize(m.samples[metric]) }

type options struct {
	quick      bool
	runs       int
	out        string
	only       string
	profileDir string
	amqpURL    string
	natsURL    string
	events     int
	orders     int
	brokers    string

	apps         bool
	appsBaseline string
	appsOnly     string
	appsOrders   string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rss-child" {
		if err := rssChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "rss-child:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.BoolVar(&o.quick, "quick", false, "smaller counts and fewer points: under 5 minutes on 2 cores")
	flag.IntVar(&o.runs, "runs", 3, "runs of each measurement (median, min and max are reported)")
	flag.StringVar(&o.out, "out", "../BENCHMARKS.md", "where to write the report")
	flag.StringVar(&o.only, "only", "", "run only the scenarios named, comma-separated: throughput,flow,scaling,rss,outbox (the report then holds only those)")
	flag.StringVar(&o.profileDir, "profile", "", "write a CPU profile of every troupe run into this directory")
	flag.StringVar(&o.amqpURL, "amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL (skipped when unreachable)")
	flag.StringVar(&o.natsURL, "nats", "nats://127.0.0.1:4222", "external NATS server with JetStream (skipped when unreachable)")
	flag.IntVar(&o.events, "events", 0, "events per throughput run on every broker, instead of the mode's counts")
	flag.IntVar(&o.orders, "orders", 0, "orders of the saturated order-flow run, instead of the mode's count")
	flag.StringVar(&o.brokers, "brokers", "embedded,rabbitmq,nats", "brokers of the throughput scenario, comma-separated")
	flag.BoolVar(&o.apps, "apps", false, "run the example apps under load instead (see apps.go); rewrites only that section of the report")
	flag.StringVar(&o.appsBaseline, "apps-baseline", "", "with --apps, also run the apps of this git `revision` (for example the in-memory apps of d47b667)")
	flag.StringVar(&o.appsOnly, "apps-only", "", "with --apps, only these `apps`, comma-separated (shop, fooddelivery, jobfeed, usermgmt)")
	flag.StringVar(&o.appsOrders, "apps-orders", "", "with --apps, the `checkpoints`: transactions placed before each settle and RSS reading (default 10000,100000; 2000,10000 with --quick)")
	flag.Parse()
	if o.runs < 1 {
		o.runs = 1
	}
	// Brokers and libraries log to the default logger; keep the terminal for
	// the progress bar.
	slog.SetDefault(slog.New(slog.DiscardHandler))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if o.apps {
		ao, err := appsOpts(o)
		if err == nil {
			err = runApps(ctx, o, ao)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	started := time.Now()
	env, err := newEnv(ctx, o)
	if err != nil {
		return err
	}
	defer env.Close()

	want := func(s string) bool {
		return o.only == "" || strings.Contains(","+o.only+",", ","+s+",")
	}
	var plan []*Measure
	if want("throughput") {
		plan = append(plan, throughputPlan(env)...)
	}
	if want("flow") {
		plan = append(plan, flowPlan(env)...)
	}
	if want("scaling") {
		plan = append(plan, scalingPlan(env)...)
	}
	if want("rss") {
		plan = append(plan, rssPlan(env)...)
	}
	if want("outbox") {
		plan = append(plan, outboxPlan(env)...)
	}
	total := 0
	for _, m := range plan {
		total += m.Runs
		m.samples = make(map[string][]float64)
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
		progressbar.OptionClearOnFinish(),
	)
	// Runs are interleaved within a group of measures that are compared
	// with each other (one scenario on one broker): run 1 of every client,
	// then run 2 of every client, and so on, so that a change in the
	// machine's load touches every client of the comparison alike instead
	// of all runs of one of them.
	for _, group := range groups(plan) {
		for i := range o.runs {
			for _, m := range group {
				if i >= m.Runs || m.err != nil {
					continue
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				bar.Describe(fmt.Sprintf("%s %s %s %s (%d/%d)", m.Scenario, m.Broker, m.Case, m.Client, i+1, m.Runs))
				began := time.Now()
				met, err := profiled(o, m, i, func() (Metrics, error) { return m.Run(ctx) })
				m.took += time.Since(began)
				_ = bar.Add(1)
				if err != nil {
					m.err = err
					fmt.Fprintf(os.Stderr, "\n%s %s %s %s: %v\n", m.Scenario, m.Broker, m.Case, m.Client, err)
					_ = bar.Add(m.Runs - i - 1)
					continue
				}
				for k, v := range met {
					m.samples[k] = append(m.samples[k], v)
				}
			}
		}
	}
	_ = bar.Finish()
	report := renderReport(env, o, plan, time.Since(started))
	if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s in %s\n", o.out, time.Since(started).Round(time.Second))
	var failed []string
	for _, m := range plan {
		if m.err != nil {
			failed = append(failed, m.Scenario+"/"+m.Broker+"/"+m.Case+"/"+m.Client)
		}
	}
	if len(failed) > 0 {
		return errors.New("some measurements failed (see the report): " + strings.Join(failed, ", "))
	}
	return nil
}

// appsOpts reads the --apps flags.
func appsOpts(o options) (appsOptions, error) {
	ao := appsOptions{checkpoints: []int{10_000, 100_000}, baseline: o.appsBaseline, settleLimit: 15 * time.Minute,
		connections: 32, apps: map[string]bool{}}
	if o.quick {
		ao.checkpoints = []int{2_000, 10_000}
	}
	if o.appsOrders != "" {
		ao.checkpoints = nil
		prev := 0
		for _, f := range strings.Split(o.appsOrders, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= prev {
				return ao, fmt.Errorf("--apps-orders %q: give increasing counts, such as 10000,100000", o.appsOrders)
			}
			ao.checkpoints, prev = append(ao.checkpoints, n), n
		}
	}
	for _, a := range strings.Split(o.appsOnly, ",") {
		if a = strings.TrimSpace(a); a != "" {
			ao.apps[a] = true
		}
	}
	return ao, nil
}

// profiled runs fn, under a CPU profile when --profile is set and the
// measure is troupe's.
func profiled(o options, m *Measure, run int, fn func() (Metrics, error)) (Metrics, error) {
	if o.profileDir == "" || m.Client != "troupe" {
		return fn()
	}
	if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
		return nil, err
	}
	name := strings.NewReplacer(" ", "_", "/", "_", ",", "").Replace(
		fmt.Sprintf("%s-%s-%s-%d.pprof", m.Scenario, m.Broker, m.Case, run+1))
	f, err := os.Create(filepath.Join(o.profileDir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, err
	}
	defer pprof.StopCPUProfile()
	return fn()
}

// groups splits plan into runs of consecutive measures of one scenario on
// one broker, keeping their order.
func groups(plan []*Measure) [][]*Measure {
	var out [][]*Measure
	for i, m := range plan {
		if i == 0 || m.Scenario != plan[i-1].Scenario || m.Broker != plan[i-1].Broker {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], m)
	}
	return out
}
