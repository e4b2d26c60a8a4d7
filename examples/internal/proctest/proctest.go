// Package proctest runs an example's program as real processes in its
// tests: build it once, start copies with their own flags, wait for what
// their output or API shows, stop them with SIGTERM as a user would.
package proctest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Buffer collects a program's output while it runs; it is safe for
// concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreeAddr returns a loopback address no one listened on a moment ago: a
// program must be told its address, since with port 0 a test could not
// know it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Build builds the program in the test's working directory once per test
// binary. Call Clean from TestMain after the tests ran.
type Build struct {
	Name string // the binary's name

	once sync.Once
	dir  string
	bin  string
	err  error
}

// Program returns the built binary, building it on first use. It skips
// the test without a go command, and fails it when the build fails.
func (b *Build) Program(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", b.Name+"-test-"); b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, b.Name)
		if out, err := exec.Command(goTool, "build", "-o", b.bin, ".").CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// Clean removes the built binary.
func (b *Build) Clean() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// Process is one running copy of a program.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  *Buffer // its stdout and stderr

	exited  chan struct{}
	waitErr error // set before exited closes
}

// Start starts bin with args and env added to the test's environment. The
// process is killed when the test ends, if it still runs.
func Start(t testing.TB, name, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: name, Out: &Buffer{}, exited: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = append(p.Cmd.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.Cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.exited }

// Err is how the process ended (nil for status 0); valid once Exited.
func (p *Process) Err() error {
	<-p.exited
	return p.waitErr
}

// Stop sends SIGTERM and expects exit status 0 within 30s.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Error(err)
		return
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("%s exited with %v after SIGTERM, want status 0\n%s", p.Name, p.waitErr, Tail(p.Out.String(), 30))
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not exit within 30s of SIGTERM\n%s", p.Name, Tail(p.Out.String(), 30))
	}
}

// WaitFor polls ready every 20ms until it reports true; it fails the test
// when one of procs exits first, or when limit passes, with their output.
func WaitFor(t testing.TB, what string, limit time.Duration, procs []*Process, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ready() {
		for _, p := range procs {
			if p.Exited() {
				t.Fatalf("%s exited (%v) while waiting for %s:\n%s", p.Name, p.waitErr, what, Tail(p.Out.String(), 30))
			}
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			for _, p := range procs {
				sb.WriteString("\n--- " + p.Name + ":\n" + Tail(p.Out.String(), 30))
			}
			t.Fatalf("timed out after %s waiting for %s%s", limit, what, sb.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval: what is awaited gives no signal
	}
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
