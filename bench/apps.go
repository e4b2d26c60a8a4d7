package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/troupe-go/troupe/transport/natsjs"
)

// The app-load scenario (go run . --apps): each example app, built as its
// users build it, driven over its HTTP API at saturation by a load
// generator, with failures injected through the app's own flags; then the
// harness waits until the app's list endpoint says every accepted
// transaction is terminal, reads its books, and measures the process's
// memory. It answers the questions a user asks of an example before
// copying it: how fast does it take orders, does every order end, is anyone
// charged twice, and does memory stay flat as orders pile up.
//
// The load generator is vegeta (github.com/tsenart/vegeta/v12), the Go
// ecosystem's standard HTTP load-testing library: it keeps a fixed number
// of connections busy, records every request's latency and status, and takes
// a targeter, so each request carries a new body and Idempotency-Key.

// appSpec is what the harness knows of one example app.
type appSpec struct {
	name string
	// nameEnv is the environment variable that names the app, and so its
	// namespace on an external broker.
	nameEnv string
	// flags inject failures (and give the app what it needs to run beside
	// others, such as a port of its own).
	flags func() []string
	// setup, when not nil, prepares the app before the load (jobs for
	// candidates to match).
	setup func(base string) error
	// create returns the i-th request of a run that starts a transaction,
	// for the app at base (http://host:port).
	create func(base, run string, i int) vegeta.Target
	// list is the endpoint reporting count, by_status, terminal, stuck.
	list string
	// ledger is the endpoint of the app's books, "" when it has none.
	ledger string
}

func jsonPost(base, path, key string, body any) vegeta.Target {
	b, _ := json.Marshal(body)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Idempotency-Key", key)
	return vegeta.Target{Method: "POST", URL: base + path, Body: b, Header: h}
}

// appSpecs are the example apps, with the failures the issue asks for:
// payments that fail, stock that runs out, restaurants that fail or stay
// silent.
func appSpecs() []appSpec {
	skus := []string{"book", "lamp", "mug", "pen", "tea"}
	return []appSpec{
		{
			name: "shop", nameEnv: "SHOP_APP_NAME",
			flags: func() []string { return []string{"--fail-rate", "0.2", "--decline-rate", "0.05"} },
			create: func(base, run string, i int) vegeta.Target {
				return jsonPost(base, "/orders", fmt.Sprintf("%s-%d", run, i), map[string]any{
					"customer": fmt.Sprintf("c%d", i%500),
					"items":    []map[string]any{{"sku": skus[i%len(skus)], "qty": 1 + i%3}},
				})
			},
			list: "/orders", ledger: "/ledger",
		},
		{
			name: "fooddelivery", nameEnv: "FOODDELIVERY_APP_NAME",
			flags: func() []string { return []string{"--restaurant-failure-rate", "0.3", "--payment-crash-rate", "0.05"} },
			create: func(base, run string, i int) vegeta.Target {
				return jsonPost(base, "/orders", fmt.Sprintf("%s-%d", run, i), map[string]any{
					"customer":   fmt.Sprintf("c%d", i%500),
					"restaurant": []string{"napoli", "sakura", "taqueria"}[i%3],
					"items":      []map[string]any{{"name": "dish", "qty": 1 + i%2, "price_cents": 950}},
				})
			},
			list: "/orders", ledger: "/ledger",
		},
		{
			name: "jobfeed", nameEnv: "JOBFEED_APP_NAME",
			flags: func() []string { return nil },
			setup: func(base string) error {
				for i, j := range []map[string]any{
					{"title": "Backend engineer", "company": "Acme", "location": "Berlin", "skills": []string{"go", "postgresql"}, "min_years": 3},
					{"title": "Platform engineer", "company": "Initech", "location": "remote", "skills": []string{"go", "kubernetes"}, "min_years": 5},
					{"title": "Data engineer", "company": "Globex", "location": "Berlin", "skills": []string{"python", "sql"}, "min_years": 2},
				} {
					if err := postJSON(base+"/jobs", fmt.Sprintf("setup-job-%d", i), j); err != nil {
						return err
					}
				}
				return nil
			},
			create: func(base, run string, i int) vegeta.Target {
				resumes := []string{
					"Backend developer, 6 years of experience with Go, PostgreSQL and Kubernetes.",
					"Data analyst, 3 years of Python and SQL.",
					"Gardener.", // no skill the feed knows: no match
				}
				return jsonPost(base, "/candidates", fmt.Sprintf("%s-%d", run, i), map[string]any{
					"name": fmt.Sprintf("Candidate %d", i), "email": fmt.Sprintf("c%d-%s@example.com", i, run),
					"preferences": map[string]any{"frequency": "instant", "locations": []string{"Berlin", "remote"}},
					"resume":      resumes[i%len(resumes)],
				})
			},
			list: "/candidates",
		},
		{
			name: "usermgmt", nameEnv: "USERMGMT_APP_NAME",
			flags: func() []string {
				addr, _ := freeAddr()
				return []string{"--mail-sink", addr}
			},
			create: func(base, run string, i int) vegeta.Target {
				return jsonPost(base, "/users", fmt.Sprintf("%s-%d", run, i), map[string]any{
					"name": fmt.Sprintf("User %d", i), "email": fmt.Sprintf("u%d-%s@example.com", i, run),
				})
			},
			list: "/users",
		},
	}
}

// postJSON posts v to url with an Idempotency-Key and expects 2xx.
func postJSON(url, key string, v any) error {
	b, _ := json.Marshal(v)
	req, err := http.NewRequest("POST", url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %s %s", url, resp.Status, body)
	}
	return nil
}

// appRow is one app on one broker.
type appRow struct {
	app, broker, build string
	accepted           int
	rate               float64 // accepted per second, over the load
	p50, p99           time.Duration
	errors             int // requests that did not get 2xx
	settle             time.Duration
	counts             tallyCounts
	charged2, refund2  int
	hasLedger          bool
	rss                []rssPoint
	err                error
}

type rssPoint struct {
	orders int
	kb     int
}

// tallyCounts is the shape every app's list endpoint shares
// (examples/internal/tally).
type tallyCounts struct {
	Count    int            `json:"count"`
	ByStatus map[string]int `json:"by_status"`
	Terminal *int           `json:"terminal"`
	Stuck    *int           `json:"stuck"`
}

// reports says whether the endpoint reports terminal and stuck: the apps
// of older revisions (--apps-baseline) do not, and are not waited for.
func (c tallyCounts) reports() bool { return c.Terminal != nil && c.Stuck != nil }

type appsOptions struct {
	checkpoints []int  // RSS is read once this many transactions were placed and settled
	baseline    string // a git revision whose apps run beside this checkout's
	settleLimit time.Duration
	connections int
	apps        map[string]bool
}

// runApps runs the scenario and splices its section into the report.
func runApps(ctx context.Context, o options, ao appsOptions) error {
	started := time.Now()
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "troupe-bench-apps-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	builds := []struct{ label, root string }{{"this checkout", root}}
	if ao.baseline != "" {
		wt := filepath.Join(dir, "baseline")
		if out, err := exec.CommandContext(ctx, "git", "-C", root, "worktree", "add", "--detach", wt, ao.baseline).CombinedOutput(); err != nil {
			return fmt.Errorf("baseline %s: %v\n%s", ao.baseline, err, out)
		}
		defer exec.Command("git", "-C", root, "worktree", "remove", "--force", wt).Run()
		builds = append(builds, struct{ label, root string }{ao.baseline, wt})
	}
	brokers := []string{"embedded:"}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(o.natsURL, "nats://"), time.Second); err == nil {
		c.Close()
		brokers = append(brokers, o.natsURL)
	} else {
		fmt.Fprintf(os.Stderr, "apps: no NATS at %s (%v): embedded only\n", o.natsURL, err)
	}
	var rows []appRow
	for _, b := range builds {
		for _, spec := range appSpecs() {
			if len(ao.apps) > 0 && !ao.apps[spec.name] {
				continue
			}
			bin := filepath.Join(dir, b.label, spec.name)
			if err := buildApp(ctx, b.root, spec.name, bin); err != nil {
				rows = append(rows, appRow{app: spec.name, build: b.label, broker: "–", err: err})
				continue
			}
			for _, br := range brokers {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fmt.Fprintf(os.Stderr, "apps: %s (%s) on %s\n", spec.name, b.label, brokerLabel(br))
				row := loadApp(ctx, ao, spec, bin, br, filepath.Join(dir, "data"))
				row.build = b.label
				if row.err != nil {
					fmt.Fprintf(os.Stderr, "apps: %s on %s: %v\n", spec.name, brokerLabel(br), row.err)
				}
				rows = append(rows, row)
			}
		}
	}
	section := renderApps(o, ao, rows, time.Since(started))
	if err := spliceSection(o.out, appsBegin, appsEnd, section); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote the app-load section of %s in %s\n", o.out, time.Since(started).Round(time.Second))
	for _, r := range rows {
		if r.err != nil {
			return errors.New("some apps failed (see the report)")
		}
	}
	return nil
}

func brokerLabel(b string) string {
	if b == "embedded:" {
		return "embedded"
	}
	return "NATS"
}

// buildApp builds the example app's program as a user would: go build in
// the examples' module (its own module, or the root one of older
// checkouts).
func buildApp(ctx context.Context, root, app, bin string) error {
	dir, pkg := filepath.Join(root, "examples"), "./"+app
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		dir, pkg = root, "./examples/"+app
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// loadApp runs one app on one broker through the checkpoints.
func loadApp(ctx context.Context, ao appsOptions, spec appSpec, bin, broker, dataRoot string) appRow {
	row := appRow{app: spec.name, broker: brokerLabel(broker), hasLedger: spec.ledger != ""}
	if err := os.MkdirAll(dataRoot, 0o755); err != nil {
		row.err = err
		return row
	}
	data, err := os.MkdirTemp(dataRoot, spec.name+"-")
	if err != nil {
		row.err = err
		return row
	}
	defer os.RemoveAll(data)
	addr, err := freeAddr()
	if err != nil {
		row.err = err
		return row
	}
	base := "http://" + addr
	run := unique("load")
	args := append([]string{"--data", data, "--http", addr, "--broker", broker, "--log-level", "error"}, spec.flags()...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), spec.nameEnv+"="+run)
	logf, err := os.Create(filepath.Join(data, "app.log"))
	if err != nil {
		row.err = err
		return row
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		row.err = err
		return row
	}
	// exited is closed when the process ends, with its status in waitErr,
	// so that every wait below can watch it.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	if broker != "embedded:" {
		// Runs after the app stopped (deferred calls run in reverse).
		defer func() {
			if nc, err := nats.Connect(broker); err == nil {
				dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_ = natsjs.DeleteNamespace(dctx, nc, run)
				cancel()
				nc.Close()
			}
		}()
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	fail := func(err error) appRow {
		select {
		case <-exited:
			err = fmt.Errorf("%w (the app exited: %v)", err, waitErr)
		default:
		}
		row.err = fmt.Errorf("%w\n%s", err, tailFile(logf.Name(), 20))
		return row
	}
	if err := waitHealthy(ctx, base, exited); err != nil {
		return fail(err)
	}
	if spec.setup != nil {
		if err := spec.setup(base); err != nil {
			return fail(err)
		}
	}
	var lat vegeta.LatencyMetrics
	var busy time.Duration
	placed := 0
	for _, cp := range ao.checkpoints {
		var next atomic.Int64
		next.Store(int64(placed))
		tr := func(t *vegeta.Target) error {
			i := int(next.Add(1)) - 1
			if i >= cp {
				return vegeta.ErrNoTargets
			}
			*t = spec.create(base, run, i)
			return nil
		}
		// A targeter out of targets stops its attacker for good: one
		// attacker per checkpoint.
		atk := vegeta.NewAttacker(vegeta.Workers(uint64(ao.connections)), vegeta.MaxWorkers(uint64(ao.connections)),
			vegeta.Connections(ao.connections), vegeta.KeepAlive(true), vegeta.Timeout(30*time.Second))
		began := time.Now()
		for res := range atk.Attack(tr, vegeta.ConstantPacer{}, 0, spec.name) {
			if res.Error == vegeta.ErrNoTargets.Error() {
				continue // the request that found no target was never sent
			}
			lat.Add(res.Latency)
			if res.Code >= 200 && res.Code < 300 {
				row.accepted++
			} else {
				row.errors++
			}
		}
		busy += time.Since(began)
		placed = cp
		settleStart := time.Now()
		counts, err := waitSettled(ctx, base+spec.list, row.accepted, ao.settleLimit, exited)
		row.counts, row.settle = counts, time.Since(settleStart)
		if err != nil {
			return fail(err)
		}
		kb, err := vmRSS(cmd.Process.Pid)
		if err != nil {
			return fail(err)
		}
		row.rss = append(row.rss, rssPoint{orders: cp, kb: kb})
	}
	row.rate = float64(row.accepted) / busy.Seconds()
	row.p50, row.p99 = lat.Quantile(0.5), lat.Quantile(0.99)
	if spec.ledger != "" {
		var books struct {
			ChargedTwice  int `json:"orders_charged_twice"`
			RefundedTwice int `json:"orders_refunded_twice"`
		}
		if err := getJSON(base+spec.ledger, &books); err != nil {
			return fail(err)
		}
		row.charged2, row.refund2 = books.ChargedTwice, books.RefundedTwice
	}
	return row
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitHealthy(ctx context.Context, base string, exited <-chan struct{}) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("the app exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // poll: the app gives no signal
		}
		if time.Now().After(deadline) {
			return errors.New("the app was not ready after 2 minutes")
		}
	}
}

// waitSettled polls the list endpoint until it reports at least accepted
// transactions, none stuck, or limit passes; it returns the last counts.
func waitSettled(ctx context.Context, url string, accepted int, limit time.Duration, exited <-chan struct{}) (tallyCounts, error) {
	deadline := time.Now().Add(limit)
	var c tallyCounts
	for {
		c = tallyCounts{}
		if err := getJSON(url, &c); err != nil {
			return c, err
		}
		if !c.reports() || c.Count >= accepted && *c.Stuck == 0 && *c.Terminal == c.Count {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("after %s, %d of %d transactions are not terminal (%v)", limit, *c.Stuck, c.Count, c.ByStatus)
		}
		select {
		case <-exited:
			return c, errors.New("the app exited")
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(250 * time.Millisecond): // poll: the app gives no signal
		}
	}
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// vmRSS reads the resident set size of a process, in KiB.
func vmRSS(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

const (
	appsBegin = "<!-- app-load: begin (go run . --apps rewrites this section) -->"
	appsEnd   = "<!-- app-load: end -->"
)

func renderApps(o options, ao appsOptions, rows []appRow, took time.Duration) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cmd := "cd bench && go run . --apps"
	if o.quick {
		cmd += " --quick"
	}
	if ao.baseline != "" {
		cmd += " --apps-baseline " + ao.baseline
	}
	p("## The example apps under load\n\n")
	p("`%s`, run on %s (UTC), took %s; %s. Each app is built as a user builds it,\n", cmd,
		time.Now().UTC().Format("2006-01-02 15:04"), took.Round(time.Second), machine())
	p("started on a fresh data directory (SQLite state) with failures injected through its flags, and\n")
	p("driven over HTTP by vegeta with %d connections at saturation, each request a new\n", ao.connections)
	p("transaction with its own Idempotency-Key. After each checkpoint the harness waits until the\n")
	p("app's list endpoint reports every accepted transaction terminal, then reads the process's RSS.\n")
	p("*accepted/s* and the latencies cover every request of the run; *s to terminal* is the wait after\n")
	p("the last checkpoint's load; *stuck* is what the list endpoint reports at the end (an app whose list\n")
	p("endpoint reports no terminal and stuck counts, as the apps before issue #23, is not waited for).\n\n")
	head := []string{"app", "build", "broker", "accepted>", "accepted/s>", "p50 ms>", "p99 ms>", "not 2xx>", "s to terminal>", "stuck>", "charged twice>", "refunded twice>"}
	for _, cp := range ao.checkpoints {
		head = append(head, fmt.Sprintf("RSS MB after %s>", Int(cp)))
	}
	t := Table{Header: head}
	for _, r := range rows {
		if r.err != nil {
			t.Add(r.app, r.build, r.broker, "failed: "+firstLine(r.err.Error()))
			continue
		}
		twice, refund := "–", "–"
		if r.hasLedger {
			twice, refund = Int(r.charged2), Int(r.refund2)
		}
		settle, stuck := "not reported", "–"
		if r.counts.reports() {
			settle, stuck = fmt.Sprintf("%.1f", r.settle.Seconds()), Int(*r.counts.Stuck)
		}
		cells := []string{r.app, r.build, r.broker, Int(r.accepted), Num(r.rate), Ms(r.p50), Ms(r.p99), Int(r.errors),
			settle, stuck, twice, refund}
		for _, pt := range r.rss {
			cells = append(cells, fmt.Sprintf("%.1f", float64(pt.kb)/1024))
		}
		t.Add(cells...)
	}
	b.WriteString(t.Markdown())
	return b.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// spliceSection replaces the text between begin and end in the file at
// path (adding it at the end when absent), leaving the rest as it is.
func spliceSection(path, begin, end, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	block := begin + "\n" + section + end + "\n"
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(end):]
		s = strings.Replace(s, end+"\n\n", end+"\n", 1)
	} else {
		if s != "" && !strings.HasSuffix(s, "\n\n") {
			s += "\n"
		}
		s += block
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// carrySection returns the section between begin and end of the file at
// path, with its markers, or "" when it has none: the full report keeps
// the app-load section a separate run wrote.
func carrySection(path, begin, end string) string {
	old, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return ""
	}
	return s[i:j+len(end)] + "\n"
}
