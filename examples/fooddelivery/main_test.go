//go:build unix

package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/internal/proctest"
)

// build is the program, built once for the package's tests.
var build = proctest.Build{Name: "fooddelivery"}

func TestMain(m *testing.M) {
	code := m.Run()
	build.Clean()
	os.Exit(code)
}

// buildProgram builds the program, unless the tests run with -short.
func buildProgram(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	return build.Program(t)
}

// start runs a copy of the program, named after its arguments.
func start(t *testing.T, bin string, env []string, args ...string) *proctest.Process {
	t.Helper()
	return proctest.Start(t, strings.Join(args, " "), bin, env, args...)
}

// waitFor is proctest.WaitFor with the processes last.
func waitFor(t *testing.T, what string, limit time.Duration, ready func() bool, procs ...*proctest.Process) {
	t.Helper()
	proctest.WaitFor(t, what, limit, procs, ready)
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func getJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status + ": " + string(b))
	}
	return json.Unmarshal(b, v)
}

// TestBinary runs the program as a user would: start, see the URLs to try,
// place an order over HTTP, see it assigned, stop with SIGTERM.
func TestBinary(t *testing.T) {
	bin := buildProgram(t)
	addr := proctest.FreeAddr(t)
	p := start(t, bin, nil, "--http", addr, "--data", t.TempDir())
	base := "http://" + addr
	waitFor(t, "the URLs to try", 30*time.Second, func() bool {
		return strings.Contains(p.Out.String(), "food delivery is running at "+base)
	}, p)

	resp, err := httpClient.Post(base+"/orders", "application/json", strings.NewReader(
		`{"customer":"ada","restaurant":"napoli","items":[{"name":"margherita","qty":2,"price_cents":950}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var placed struct{ ID string }
	err = json.NewDecoder(resp.Body).Decode(&placed)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted || placed.ID == "" {
		t.Fatalf("POST /orders: %d, id %q, %v", resp.StatusCode, placed.ID, err)
	}
	waitFor(t, "the order to be assigned", 30*time.Second, func() bool {
		var o struct{ Status string }
		return getJSON(base+"/orders/"+placed.ID, &o) == nil && o.Status == "assigned"
	}, p)
	for _, line := range []string{
		"order: placing order " + placed.ID,
		"payment: charged order " + placed.ID + " 19.00 EUR to ada",
		"restaurant: napoli confirmed order " + placed.ID,
		"delivery partner",
		"loyalty: 19 points to ada for order " + placed.ID,
		"notification: emailed ada about order " + placed.ID + ": confirmed",
	} {
		if line == "delivery partner" {
			line = "delivery-partner: "
		}
		if !strings.Contains(p.Out.String(), line) {
			t.Errorf("the log lacks %q", line)
		}
	}
	// The operator surface: the dashboard and the metrics.
	for _, path := range []string{"/ui/", "/metrics"} {
		resp, err := httpClient.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	httpClient.CloseIdleConnections()
	p.Stop(t)
}

// TestHelp checks that -h lists the app's flags with troupe's, with their
// defaults, and the operator's commands.
func TestHelp(t *testing.T) {
	bin := buildProgram(t)
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("-h: %v\n%s", err, out)
	}
	for _, want := range []string{
		"-broker URL", "-data DIR", "-db URL", "$FOODDELIVERY_DB",
		"-restaurant-failure-rate F", "-payment-crash-rate F", "-simulate N", "-simulate-rate R", "(default 0)",
		"\n  dlq ", "\n  graph ", "\n  tail ", "\n  trace ",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-h lacks %q:\n%s", want, out)
		}
	}
}

// TestSimulateFlag runs --simulate as the README shows it and reads its
// reconciliation table.
func TestSimulateFlag(t *testing.T) {
	bin := buildProgram(t)
	p := start(t, bin, nil, "--http", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "error",
		"--simulate", "200", "--restaurant-failure-rate", "0.3", "--payment-crash-rate=0.05")
	select {
	case <-p.Done():
	case <-time.After(90 * time.Second):
		t.Fatalf("--simulate 200 did not end within 90s:\n%s", proctest.Tail(p.Out.String(), 30))
	}
	out := p.Out.String()
	if p.Err() != nil {
		t.Fatalf("--simulate exited with %v:\n%s", p.Err(), out)
	}
	for _, want := range []string{"simulate: placing 200 orders", "orders placed", "stuck (no terminal state)", "charged = confirmed + reversed", "customers told a thing twice"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	fields := func(label string) []string {
		for line := range strings.Lines(out) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
				return strings.Fields(rest)
			}
		}
		return nil
	}
	if f := fields("orders placed"); len(f) == 0 || f[0] != "200" {
		t.Errorf("orders placed: %v, want 200", f)
	}
	if f := fields("stuck (no terminal state)"); len(f) == 0 || f[0] != "0" {
		t.Errorf("stuck: %v, want 0", f)
	}
	if f := fields("charged = confirmed + reversed"); len(f) == 0 || f[0] != "yes" {
		t.Errorf("money check: %v, want yes", f)
	}
	if f := fields("cancelled (compensated: refunded)"); len(f) == 0 || f[0] == "0" {
		t.Errorf("cancelled: %v, want some at a failure rate of 0.3", f)
	}
	if f := fields("customers told a thing twice"); len(f) == 0 || f[0] != "0" {
		t.Errorf("told twice: %v, want 0", f)
	}
	t.Logf("--simulate 200 --restaurant-failure-rate 0.3 --payment-crash-rate=0.05:\n%s", out[strings.Index(out, "reconciliation"):])
}

// TestBadFlags checks that a mistake on the command line stops the
// program with a message that says what to give: status 2 for a usage
// error, 1 for a database that is not there.
func TestBadFlags(t *testing.T) {
	bin := buildProgram(t)
	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"--restaurant-failure-rate", "2"}, 2, "use a share from 0 to 1, such as 0.2"},
		{[]string{"--restaurant-failure-rate=lots"}, 2, "use a share from 0 to 1"},
		{[]string{"--payment-crash-rate", "-0.1"}, 2, "-payment-crash-rate: use a share from 0 to 1"},
		{[]string{"--simulate", "-5"}, 2, "use a number of orders, at least 1"},
		{[]string{"--simulate", "many"}, 2, "use a number of orders"},
		{[]string{"--simulate-rate", "-1"}, 2, "use orders per second"},
		{[]string{"--simulate", "5", "--http", "off"}, 2, "leave out --http off"},
		{[]string{"--simulate", "5", "--services", "payment"}, 2, "run it in this process"},
		{[]string{"--db", "mysql://root:secret@localhost/db"}, 2, "postgres://user@127.0.0.1:5432/db"},
		{[]string{"--db", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"}, 1, "does not answer"},
		{[]string{"--services", "kitchen"}, 1, "no such service"},
		{[]string{"graph", "--format", "png"}, 2, "unknown format"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := tc.args
			if args[0] != "graph" && !slices.Contains(args, "--http") {
				args = append(args, "--http", "127.0.0.1:0")
			}
			if args[0] != "graph" {
				args = append(args, "--data", t.TempDir())
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.status {
				t.Fatalf("exit %v, want status %d; output:\n%s", err, tc.status, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
			if strings.Contains(string(out), "secret") {
				t.Errorf("output shows the password:\n%s", out)
			}
		})
	}
}

// TestGraph checks that the topology command draws both paths: every
// emitted event and the compensation.
func TestGraph(t *testing.T) {
	bin := buildProgram(t)
	out, err := exec.Command(bin, "graph", "--format", "mermaid").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"sub_payment_dcharge -->|emits| topic_payment__success",
		"sub_restaurant_dconfirm -->|emits| topic_restaurant__confirmed__order",
		"sub_delivery_hpartner_dassign -->|emits| topic_delivery__partner__assigned",
		"sub_payment_dreverse -->|emits| topic_payment__reversed",
		"sub_restaurant_dconfirm ==>|on failure| topic_restaurant__order__confirmation__failed",
		"topic_restaurant__confirmed__order --> sub_loyalty_dadd_hpoints",
		"topic_restaurant__order__confirmation__failed --> sub_payment_dreverse",
		"topic_payment__reversed --> sub_notification_dtell_hrefunded",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the graph lacks %q", want)
		}
	}
}
