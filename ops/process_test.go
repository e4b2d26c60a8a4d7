//go:build unix

package ops_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe/troupetest"
)

// TestAsProcess builds an app binary that imports ops and runs its
// commands as an operator would, against an app on the embedded broker
// (through its listener), checking output and exit status: 0 when done, 1
// for a failure such as an unknown id, 2 for a mistake in the arguments.
func TestAsProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "opsapp")
	build := exec.Command("go", "build", "-o", bin, "./testdata/opsapp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The commands are the same on every broker (TestDLQCommands and
	// others run them on each); here the process around them is tested.
	onBrokersOf(t, []string{"embedded"}, func(t *testing.T, s *site) {
		s.placeOrders(t, 1)
		run := func(args ...string) (stdout, stderr string, code int) {
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "OPSAPP_NAME="+s.name, "TROUPE_BROKER="+s.broker)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			return out.String(), errb.String(), code
		}

		out, stderr, code := run("dlq", "list")
		if code != 0 || !regexp.MustCompile(`(?m)^shipping\.ship\s+1$`).MatchString(out) {
			t.Errorf("dlq list: exit %d\n%s%s", code, out, stderr)
		}
		_, stderr, code = run("dlq", "list", "nope.nope")
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "shipping.ship") {
			t.Errorf("dlq list nope.nope: exit %d, stderr %q", code, stderr)
		}
		_, stderr, code = run("dlq", "replay", "shipping.ship", "no-such-id")
		if code != 1 || strings.Count(withoutInfo(stderr), "\n") != 1 || !strings.Contains(stderr, "dlq list shipping.ship") {
			t.Errorf("dlq replay of an unknown id: exit %d, stderr %q", code, stderr)
		}
		_, stderr, code = run("dlq", "--help")
		if code != 0 || !strings.Contains(stderr, "dlq replay <service.subscription> <id>|--all") {
			t.Errorf("dlq --help: exit %d, stderr %q", code, stderr)
		}
		_, stderr, code = run("trace", "no-such-id")
		if code != 1 || !strings.Contains(stderr, `"no-such-id"`) {
			t.Errorf("trace of an unknown id: exit %d, stderr %q", code, stderr)
		}
		// The journal is written in the background: wait for the last step.
		deadline := time.Now().Add(troupetest.DefaultTimeout)
		for {
			out, stderr, code = run("trace", s.name+"-o1")
			if code == 0 && strings.Contains(out, "dead-lettered") || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code != 0 || !strings.Contains(out, "correlation "+s.name+"-o1: 5 entries") {
			t.Errorf("trace: exit %d\n%s%s", code, out, stderr)
		}
	})
}

// withoutInfo drops the app's info logs from stderr: Stop logs "troupe app
// stopped" even for a client, which is the root package's to quieten.
func withoutInfo(stderr string) string {
	var keep []string
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if !strings.Contains(l, " INFO ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}
