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
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/internal/proctest"
	"github.com/troupe-go/troupe/examples/jobfeed/notification"
	"github.com/troupe-go/troupe/examples/jobfeed/portal"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 30 * time.Second

// buildProgram builds the program into a temporary directory.
func buildProgram(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	bin := filepath.Join(t.TempDir(), "jobfeed")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is one running instance of the program.
type process struct {
	name    string
	cmd     *exec.Cmd
	out     *proctest.Buffer
	exited  chan struct{}
	waitErr error // set before exited closes
}

func startProcess(t *testing.T, bin, name string, env []string, args ...string) *process {
	t.Helper()
	p := &process{name: name, out: &proctest.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("%s exited with %v after SIGTERM, want status 0; output:\n%s", p.name, p.waitErr, p.out)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not exit within %s of SIGTERM; output:\n%s", p.name, waitTimeout, p.out)
	}
}

var client = &http.Client{Timeout: 5 * time.Second}

// httpDo sends a request and returns the status and body; a failed
// connection is status 0.
func httpDo(method, url, body string) (int, []byte) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitFor polls ready until it reports true, failing the test with the
// processes' output if one of them exits or time runs out.
func waitFor(t *testing.T, what string, procs []*process, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !ready() {
		for _, p := range procs {
			select {
			case <-p.exited:
				t.Fatalf("%s exited (%v) while waiting for %s; output:\n%s", p.name, p.waitErr, what, p.out)
			default:
			}
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&sb, "\n--- %s:\n%s", p.name, p.out)
			}
			t.Fatalf("timed out waiting for %s%s", what, sb.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func postJSON(t *testing.T, base, path, body string) string {
	t.Helper()
	status, b := httpDo("POST", base+path, body)
	var c portal.Created
	if err := json.Unmarshal(b, &c); err != nil || status != http.StatusCreated || c.ID == "" {
		t.Fatalf("POST %s: %d %s (%v)", path, status, b, err)
	}
	return c.ID
}

func getCandidate(base, id string) (portal.Candidate, bool) {
	var c portal.Candidate
	status, b := httpDo("GET", base+"/candidates/"+id, "")
	return c, status == http.StatusOK && json.Unmarshal(b, &c) == nil
}

func getSent(base, id string) (notification.Sent, bool) {
	var s notification.Sent
	status, b := httpDo("GET", base+"/notifications?candidate="+id, "")
	return s, status == http.StatusOK && json.Unmarshal(b, &s) == nil
}

// TestBinary runs the program as a user would: all services on the
// embedded broker; a candidate, two jobs, matches, an instant message and
// daily digests (every second here); then SIGTERM, the read model deleted,
// and a restart that rebuilds it.
func TestBinary(t *testing.T) {
	bin := buildProgram(t)
	dir := t.TempDir()
	addr := proctest.FreeAddr(t)
	base := "http://" + addr
	args := []string{"--http", addr, "--data", dir, "--daily-digest", "every 1s"}
	p := startProcess(t, bin, "jobfeed", nil, args...)
	procs := []*process{p}
	waitFor(t, "/healthz", procs, func() bool { s, _ := httpDo("GET", base+"/healthz", ""); return s == http.StatusOK })

	j1 := postJSON(t, base, "/jobs", `{"title":"Backend engineer","company":"Acme","location":"remote","skills":["go","postgresql"],"min_years":3}`)
	j2 := postJSON(t, base, "/jobs", `{"title":"Go developer","company":"Initech","location":"Berlin","skills":["go"],"min_years":1}`)
	ada := postJSON(t, base, "/candidates", `{"name":"Ada","email":"ada@example.com","preferences":{"frequency":"instant","locations":["Berlin"]},"resume":"5 years of Go and PostgreSQL."}`)
	dan := postJSON(t, base, "/candidates", `{"name":"Dan","email":"dan@example.com","preferences":{"frequency":"daily"},"resume":"Go for 2 years."}`)

	var before portal.Candidate
	waitFor(t, "Ada's two matches", procs, func() bool {
		c, ok := getCandidate(base, ada)
		before = c
		return ok && c.Status == "profiled" && len(c.Matches) == 2
	})
	waitFor(t, "Ada's instant message", procs, func() bool {
		s, ok := getSent(base, ada)
		return ok && s.Count >= 1 && s.Messages[0].Kind == portal.Instant
	})
	// Dan has one match (he lacks PostgreSQL and the years for the first
	// job); it comes in a daily digest within a second or two.
	waitFor(t, "Dan's daily digest", procs, func() bool {
		s, ok := getSent(base, dan)
		return ok && s.Count == 1 && s.Messages[0].Kind == portal.Daily && len(s.Messages[0].Jobs) == 1 && s.Messages[0].Jobs[0].JobID == j2
	})
	var ids []string
	for _, m := range before.Matches {
		ids = append(ids, m.JobID)
	}
	slices.Sort(ids)
	want := []string{j1, j2}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("Ada's matches %v, want %v", ids, want)
	}
	client.CloseIdleConnections()
	p.stop(t)

	view := portal.ViewFile + ".db"
	for _, f := range []string{view, view + "-wal", view + "-shm"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	p = startProcess(t, bin, "jobfeed (restarted)", nil, args...)
	procs = []*process{p}
	waitFor(t, "/healthz after the restart", procs, func() bool { s, _ := httpDo("GET", base+"/healthz", ""); return s == http.StatusOK })
	after, ok := getCandidate(base, ada)
	if !ok || after.Status != "profiled" || len(after.Matches) != 2 {
		t.Errorf("after deleting the read model and restarting, Ada reads %+v", after)
	}
	if !strings.Contains(p.out.String(), "rebuilt the read model portal-view from") {
		t.Errorf("the restarted program did not say it rebuilt the read model:\n%s", p.out)
	}
	client.CloseIdleConnections()
	p.stop(t)
}

// The program's own flags are in the standard flag set: -h lists them with
// troupe's and the operator commands, and a bad value is a usage error
// (status 2) that says what to give.
func TestFlagsAndHelp(t *testing.T) {
	bin := buildProgram(t)
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("-h: %v\n%s", err, out)
	}
	for _, w := range []string{"-portal-url", "-daily-digest", "-weekly-digest", "-monthly-digest", "-db", "$JOBFEED_DB",
		`(default daily at 08:00)`, "-broker", "-services", "dlq", "tail", "trace", "graph"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("-h does not list %q:\n%s", w, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--portal-url", "portal:8080"}, "give an http:// or https:// URL"},
		{[]string{"--weekly-digest", "weekly at 8"}, `invalid value "weekly at 8" for flag -weekly-digest`},
		{[]string{"--monthly-digest=monthly on 32 at 08:00"}, "not a day of the month"},
		{[]string{"--daily-digest"}, "flag needs an argument"},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%q: %v\n%s\nwant exit status 2 and %q", tc.args, err, out, tc.want)
		}
	}
}

// A --db that is not PostgreSQL stops the start, naming both forms.
func TestUnknownDatabase(t *testing.T) {
	cmd := exec.Command(buildProgram(t), "--db", "mysql://root@127.0.0.1/jobs", "--data", t.TempDir(), "--http", "off")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "postgres://") {
		t.Errorf("--db mysql://…: %v\n%s\nwant a failed start that names the forms --db takes", err, out)
	}
}

// The operator surface: the dashboard answers at /ui/ and the metrics at
// /metrics.
func TestDashboard(t *testing.T) {
	bin := buildProgram(t)
	addr := proctest.FreeAddr(t)
	p := proctest.Start(t, "jobfeed", bin, nil, "--http", addr, "--data", t.TempDir())
	base := "http://" + addr
	proctest.WaitFor(t, "/healthz", waitTimeout, []*proctest.Process{p}, func() bool { return proctest.Healthy(base) })
	for _, path := range []string{"/ui/", "/metrics"} {
		if status, _ := httpDo("GET", base+path, ""); status != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, status)
		}
	}
	client.CloseIdleConnections()
	p.Stop(t)
}
