//go:build unix

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/internal/proctest"
)

// build is the program, built once for the package's tests.
var build = proctest.Build{Name: "shop"}

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

var httpClient = &http.Client{Timeout: 10 * time.Second}

// getJSON GETs url and decodes a 200 answer into v.
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
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// TestBinary runs the program as a user would: start, place an order over
// HTTP, see it fulfilled, stop with SIGTERM.
func TestBinary(t *testing.T) {
	bin := buildProgram(t)
	base := "http://" + proctest.FreeAddr(t)
	p := proctest.Start(t, "shop", bin, nil, "--http", strings.TrimPrefix(base, "http://"), "--data", t.TempDir())
	proctest.WaitFor(t, "/healthz", 30*time.Second, []*proctest.Process{p}, func() bool { return proctest.Healthy(base) })

	resp, err := httpClient.Post(base+"/orders", "application/json",
		strings.NewReader(`{"customer":"ada","items":[{"sku":"book","qty":2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var placed struct{ ID string }
	err = json.NewDecoder(resp.Body).Decode(&placed)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || placed.ID == "" {
		t.Fatalf("POST /orders: %d, id %q, %v", resp.StatusCode, placed.ID, err)
	}
	proctest.WaitFor(t, "the order to be notified", 30*time.Second, []*proctest.Process{p}, func() bool {
		var o struct{ Status string }
		return getJSON(base+"/orders/"+placed.ID, &o) == nil && o.Status == "notified"
	})
	for _, line := range []string{
		"orders: placed order " + placed.ID,
		"payment: charged order " + placed.ID + " 24.00 EUR",
		"inventory: reserved 2×book for order " + placed.ID,
		"shipping: order " + placed.ID + " goes with",
		"notification: emailed ada that order " + placed.ID + " is on its way",
	} {
		if !strings.Contains(p.Out.String(), line) {
			t.Errorf("the log lacks %q", line)
		}
	}
	httpClient.CloseIdleConnections()
	p.Stop(t)
	if !strings.Contains(p.Out.String(), "troupe app stopped") {
		t.Errorf("the log lacks the stop line")
	}
}

// The operator surface: -h lists the shop's flags with their defaults
// and the dlq, tail, trace and graph commands; the dashboard answers at
// /ui/; graph draws the failure paths; a bad flag value is a usage error.
func TestHelpAndDashboard(t *testing.T) {
	bin := buildProgram(t)
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("-h: %v\n%s", err, out)
	}
	for _, want := range []string{
		"\n  dlq ", "\n  tail ", "\n  trace ", "\n  graph ",
		"-fail-rate F", "-decline-rate F", "-initial-stock sku=units,...", "-db URL", "(default $SHOP_DB)",
		"(default book=500,lamp=50,mug=200,pen=1000,tea=300)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-h lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(string(out), "keeps the charge single (default 0)") {
		t.Errorf("-h does not give --fail-rate's default:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--fail-rate", "1.5"}, "give a fraction from 0 to 1"},
		{[]string{"--decline-rate", "lots"}, "give a fraction from 0 to 1"},
		{[]string{"--initial-stock", "piano=3"}, `"piano" is not sold here`},
		{[]string{"--initial-stock", "book=-1"}, "give a whole number of units"},
		{[]string{"--initial-stock", "book"}, "is not sku=units"},
	} {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%q: %v, want exit status 2 and %q in:\n%s", tc.args, err, tc.want, proctest.Tail(string(out), 3))
		}
	}
	out, err = exec.Command(bin, "--db", "mysql://root@localhost/shop", "--data", t.TempDir(), "--http", "off").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "postgres://") {
		t.Errorf("--db mysql://…: %v, want a failure naming the forms --db takes:\n%s", err, proctest.Tail(string(out), 3))
	}

	out, err = exec.Command(bin, "graph", "--format", "mermaid").CombinedOutput()
	if err != nil {
		t.Fatalf("graph: %v\n%s", err, out)
	}
	for _, want := range []string{"inventory_reservation_failed", "payment_failed", "payment_refunded"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("graph lacks %s:\n%s", want, out)
		}
	}

	base := "http://" + proctest.FreeAddr(t)
	p := proctest.Start(t, "shop", bin, nil, "--http", strings.TrimPrefix(base, "http://"), "--data", t.TempDir())
	proctest.WaitFor(t, "/healthz", 30*time.Second, []*proctest.Process{p}, func() bool { return proctest.Healthy(base) })
	for _, path := range []string{"/ui/", "/metrics"} {
		resp, err := httpClient.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	httpClient.CloseIdleConnections()
	p.Stop(t)
}
