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
var build = proctest.Build{Name: "usermgmt"}

func TestMain(m *testing.M) {
	code := m.Run()
	build.Clean()
	os.Exit(code)
}

var client = &http.Client{Timeout: 40 * time.Second}

// call sends a request and returns the status and body; err is a transport
// error.
func call(method, url, body string, headers ...string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// mailCount returns how many mails GET /mail at base lists per recipient.
func mailCount(base string) (map[string]int, error) {
	status, b, err := call("GET", base+"/mail", "")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /mail: %d %s", status, b)
	}
	var list struct {
		Mails []struct{ To []string } `json:"mails"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	n := make(map[string]int)
	for _, m := range list.Mails {
		for _, to := range m.To {
			n[to]++
		}
	}
	return n, nil
}

// TestBinary builds the example and runs it as a user would: start, register
// a user and wait for the welcome mail, read it at GET /mail, stop with
// SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	bin := build.Program(t)
	addr := proctest.FreeAddr(t)
	p := proctest.Start(t, "usermgmt", bin, nil, "--http", addr, "--data", t.TempDir(), "--mail-sink", proctest.FreeAddr(t))
	base := "http://" + addr
	proctest.WaitFor(t, "/healthz", 30*time.Second, []*proctest.Process{p}, func() bool {
		status, _, err := call("GET", base+"/healthz", "")
		return err == nil && status == http.StatusOK
	})

	status, b, err := call("POST", base+"/users", `{"name":"Ada","email":"ada@example.com"}`, "Prefer: wait=10")
	var u struct {
		ID          string
		WelcomeMail struct{ Status string } `json:"welcome_mail"`
	}
	if err != nil || status != http.StatusCreated || json.Unmarshal(b, &u) != nil || u.WelcomeMail.Status != "sent" {
		t.Fatalf("POST /users: %d %s (%v)\n%s", status, b, err, p.Out)
	}
	mails, err := mailCount(base)
	if err != nil || mails["ada@example.com"] != 1 || len(mails) != 1 {
		t.Errorf("GET /mail: %v (%v), want one mail to ada@example.com", mails, err)
	}
	// The coupon service reacts to the registration on its own, beside the
	// mailer that the POST waited for.
	proctest.WaitFor(t, "the coupon", 30*time.Second, []*proctest.Process{p}, func() bool {
		return strings.Contains(p.Out.String(), "coupons: issued WELCOME-")
	})
	for _, line := range []string{
		"users: registered Ada <ada@example.com> as " + u.ID,
		"mailer: sent welcome mail",
		"user management is running at " + base + " — try:",
	} {
		if !strings.Contains(p.Out.String(), line) {
			t.Errorf("the log lacks %q", line)
		}
	}
	client.CloseIdleConnections()
	p.Stop(t)
}

// TestCommandLine checks the program's own flags and the graph command.
func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	bin := build.Program(t)
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out), exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	graph, code := run("graph", "--format", "mermaid")
	if code != 0 || !strings.Contains(graph, "user_registered.v1") || !strings.Contains(graph, "issue-welcome-coupon") {
		t.Errorf("graph: exit %d\n%s", code, graph)
	}
	cmd := exec.Command(bin, "graph", "--format", "mermaid")
	cmd.Env = append(os.Environ(), "USERMGMT_COUPONS=off")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "coupon") || !strings.Contains(string(out), "send-welcome") {
		t.Errorf("graph without coupons: %v\n%s", err, out)
	}
	if out, code := run("--db", "mysql://x", "--data", t.TempDir(), "--http", "off"); code != 1 || !strings.Contains(out, "postgres://") {
		t.Errorf("--db mysql://x: exit %d, want 1 and a hint\n%s", code, out)
	}
	if out, code := run("--services", "mailer", "--data", t.TempDir(), "--http", "off"); code != 1 || !strings.Contains(out, "--users-url") {
		t.Errorf("mailer alone without --users-url: exit %d, want 1 and a hint\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--smtp", "mail.example"}, "give host:port"},
		{[]string{"--mail-sink=2525"}, "give host:port"},
		{[]string{"--users-url", "localhost:8080"}, "give an http:// or https:// URL"},
		{[]string{"--coupons=false"}, "flag provided but not defined"},
	} {
		if out, code := run(tc.args...); code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, want 2 and %q\n%s", tc.args, code, tc.want, out)
		}
	}
	help, code := run("-h")
	for _, w := range []string{"-smtp", "-mail-sink", "-users-url", "-db", "$USERMGMT_DB", "-broker", "dlq", "tail", "trace", "graph"} {
		if code != 0 || !strings.Contains(help, w) {
			t.Errorf("-h: exit %d, want 0 and %q listed\n%s", code, w, help)
		}
	}
}

// The operator surface: the dashboard at /ui/, with the mail sink's panel,
// and the metrics.
func TestDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	bin := build.Program(t)
	addr := proctest.FreeAddr(t)
	p := proctest.Start(t, "usermgmt", bin, nil, "--http", addr, "--data", t.TempDir(), "--mail-sink", proctest.FreeAddr(t))
	base := "http://" + addr
	proctest.WaitFor(t, "/healthz", 30*time.Second, []*proctest.Process{p}, func() bool { return proctest.Healthy(base) })
	for _, path := range []string{"/ui/", "/metrics"} {
		if status, b, err := call("GET", base+path, ""); err != nil || status != http.StatusOK {
			t.Errorf("GET %s: %d %.200s (%v), want 200", path, status, b, err)
		}
	}
	client.CloseIdleConnections()
	p.Stop(t)
}
