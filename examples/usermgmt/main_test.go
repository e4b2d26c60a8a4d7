//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer collects a program's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address no one listened on a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The program is built once for all the tests of this package.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildProgram builds the example, once, into a temporary directory.
func buildProgram(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "usermgmt-test-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "usermgmt")
		if out, err := exec.Command(goTool, "build", "-o", buildBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// proc is one running program.
type proc struct {
	name    string
	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan struct{}
	waitErr error // set before exited closes
}

func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(p.cmd.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.hasExited() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and expects exit status 0 within 30s.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("%s exited with %v after SIGTERM, want status 0\n%s", p.name, p.waitErr, p.out)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not exit within 30s of SIGTERM\n%s", p.name, p.out)
	}
}

// waitFor calls ready until it reports true, one of procs exits, or
// limit passes.
func waitFor(t *testing.T, what string, limit time.Duration, procs []*proc, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ready() {
		for _, p := range procs {
			if p.hasExited() {
				t.Fatalf("%s exited (%v) while waiting for %s\n%s", p.name, p.waitErr, what, p.out)
			}
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&logs, "\n--- %s:\n%s", p.name, p.out)
			}
			t.Fatalf("timed out after %s waiting for %s%s", limit, what, logs.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
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
	bin := buildProgram(t)
	addr := freeAddr(t)
	p := startProc(t, "usermgmt", bin, nil, "--http", addr, "--data", t.TempDir(), "--mail-sink", freeAddr(t))
	base := "http://" + addr
	waitFor(t, "/healthz", 30*time.Second, []*proc{p}, func() bool {
		status, _, err := call("GET", base+"/healthz", "")
		return err == nil && status == http.StatusOK
	})

	status, b, err := call("POST", base+"/users", `{"name":"Ada","email":"ada@example.com"}`, "Prefer: wait=10")
	var u struct {
		ID          string
		WelcomeMail struct{ Status string } `json:"welcome_mail"`
	}
	if err != nil || status != http.StatusCreated || json.Unmarshal(b, &u) != nil || u.WelcomeMail.Status != "sent" {
		t.Fatalf("POST /users: %d %s (%v)\n%s", status, b, err, p.out)
	}
	mails, err := mailCount(base)
	if err != nil || mails["ada@example.com"] != 1 || len(mails) != 1 {
		t.Errorf("GET /mail: %v (%v), want one mail to ada@example.com", mails, err)
	}
	for _, line := range []string{
		"users: registered Ada <ada@example.com> as " + u.ID,
		"mailer: sent welcome mail",
		"coupons: issued WELCOME-",
		"user management is running at " + base + " — try:",
	} {
		if !strings.Contains(p.out.String(), line) {
			t.Errorf("the log lacks %q", line)
		}
	}
	client.CloseIdleConnections()
	p.stop(t)
}

// TestCommandLine checks the program's own flags and the graph command.
func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	bin := buildProgram(t)
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
	before, code := run("--coupons=false", "graph", "--format", "mermaid")
	if code != 0 || strings.Contains(before, "coupon") || !strings.Contains(before, "send-welcome") {
		t.Errorf("graph without coupons: exit %d\n%s", code, before)
	}
	if out, code := run("--db", "mysql://x", "--data", t.TempDir(), "--http", "off"); code != 1 || !strings.Contains(out, "postgres://") {
		t.Errorf("--db mysql://x: exit %d, want 1 and a hint\n%s", code, out)
	}
	if out, code := run("--services", "mailer", "--data", t.TempDir(), "--http", "off"); code != 1 || !strings.Contains(out, "--users-url") {
		t.Errorf("mailer alone without --users-url: exit %d, want 1 and a hint\n%s", code, out)
	}
	if out, code := run("--coupons=maybe"); code != 2 {
		t.Errorf("--coupons=maybe: exit %d, want 2\n%s", code, out)
	}
	if out, code := run("-h"); code != 0 || !strings.Contains(out, "--smtp") && !strings.Contains(out, "-smtp") || !strings.Contains(out, "-broker") {
		t.Errorf("-h: exit %d, want 0 and both sets of flags\n%s", code, out)
	}
}
