package proctest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

// Kill sends SIGKILL, as kill -9 would, and waits until the process is
// gone. Nothing the process had not written to disk or the broker
// survives it.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.Exited() {
		t.Fatalf("kill -9 %s: %v", p.Name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still runs 30s after SIGKILL", p.Name)
	}
}

// Healthy reports whether the troupe app at base (http://host:port)
// answers GET /healthz with 200.
func Healthy(base string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Crashing is a program that a test kills with SIGKILL at moments of its
// choosing and starts again with the same arguments (so on the same data
// directory), as a user would after a crash. It is safe for concurrent
// use: a load generator can ask for the current process while another
// goroutine kills it.
type Crashing struct {
	name, bin string
	env, args []string
	ready     func(*Process) bool

	mu    sync.Mutex
	cur   *Process
	kills int
	lives []*Process
}

// StartCrashing starts bin with args and env, and waits until ready
// reports true for it (for example: its /healthz answers). The process is
// killed when the test ends, if it still runs.
func StartCrashing(t testing.TB, name, bin string, env []string, ready func(*Process) bool, args ...string) *Crashing {
	t.Helper()
	c := &Crashing{name: name, bin: bin, env: env, args: args, ready: ready}
	c.start(t)
	return c
}

func (c *Crashing) start(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	life := len(c.lives) + 1
	c.mu.Unlock()
	p := Start(t, fmt.Sprintf("%s (life %d)", c.name, life), c.bin, c.env, c.args...)
	WaitFor(t, p.Name+" ready", 60*time.Second, []*Process{p}, func() bool { return c.ready(p) })
	c.mu.Lock()
	c.cur = p
	c.lives = append(c.lives, p)
	c.mu.Unlock()
}

// Current returns the process running now (or the one just killed,
// while the next starts).
func (c *Crashing) Current() *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// KillAndRestart kills the running process with SIGKILL, starts it again
// with the same arguments and waits until it is ready.
func (c *Crashing) KillAndRestart(t testing.TB) {
	t.Helper()
	c.Current().Kill(t)
	c.mu.Lock()
	c.kills++
	c.mu.Unlock()
	c.start(t)
}

// Kills returns how many times the program was killed.
func (c *Crashing) Kills() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kills
}

// Output returns the output of every life of the program, each under a
// header.
func (c *Crashing) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, p := range c.lives {
		fmt.Fprintf(&b, "--- %s:\n%s\n", p.Name, p.Out.String())
	}
	return b.String()
}

// Stop stops the running process with SIGTERM and expects status 0.
func (c *Crashing) Stop(t testing.TB) {
	t.Helper()
	c.Current().Stop(t)
}

// Table is the report a crash test prints: one row per app and mode, for
// instance (accepted, completed, lost, double effects).
type Table struct {
	Title  string
	Header []string
	rows   [][]string
}

// Row adds a row; values are printed with %v.
func (tb *Table) Row(values ...any) {
	row := make([]string, len(values))
	for i, v := range values {
		row[i] = fmt.Sprint(v)
	}
	tb.rows = append(tb.rows, row)
}

// String formats the table in aligned columns.
func (tb *Table) String() string {
	var b strings.Builder
	if tb.Title != "" {
		b.WriteString(tb.Title + "\n")
	}
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range append([][]string{tb.Header}, tb.rows...) {
		fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
	}
	w.Flush()
	return b.String()
}

// Log writes the table to the test's log, where go test shows it with -v
// and when the test fails.
func (tb *Table) Log(t testing.TB) {
	t.Helper()
	t.Log("\n" + tb.String())
}
