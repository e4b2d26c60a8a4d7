package contracts

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "write the example apps' contract exports to testdata/baseline instead of checking against them")

// exampleApps are the example programs, by directory under examples/.
var exampleApps = []string{"fooddelivery", "jobfeed", "shop", "usermgmt"}

// buildApps builds example programs (default all) into a temporary
// directory.
func buildApps(t *testing.T, apps ...string) map[string]string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not building the example apps")
	}
	if apps == nil {
		apps = exampleApps
	}
	dir := t.TempDir()
	bins := map[string]string{}
	for _, app := range apps {
		bin := filepath.Join(dir, app)
		cmd := exec.Command("go", "build", "-o", bin, "../"+app)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ../%s: %v\n%s", app, err, out)
		}
		bins[app] = bin
	}
	return bins
}

// runApp runs an example binary with args in a temporary directory, with
// none of the variables that rename an app, and returns its output and
// exit status.
func runApp(t *testing.T, bin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return strings.HasSuffix(name, "_APP_NAME") || strings.HasPrefix(name, "TROUPE_")
	})
	var out, errw bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errw
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		status = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return out.String(), errw.String(), status
}

// TestExampleAppsKeepTheirContracts is the CI check of the example apps:
// each app's own binary checks its code against the contract committed in
// testdata/baseline, as the CI step in docs/contracts.md does. Topics,
// fields and subscriptions may be added; a breaking change fails here,
// naming the subscriptions it breaks. After a change made on purpose,
// write the baselines again with
//
//	go test ./examples/contracts/ -run TestExampleAppsKeepTheirContracts -update
func TestExampleAppsKeepTheirContracts(t *testing.T) {
	bins := buildApps(t)
	for _, app := range exampleApps {
		baseline, err := filepath.Abs(filepath.Join("testdata", "baseline", app+".contract.json"))
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			out, stderr, status := runApp(t, bins[app], "contract", "export")
			if status != 0 {
				t.Fatalf("%s contract export: exit status %d\n%s", app, status, stderr)
			}
			if err := os.WriteFile(baseline, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", baseline)
			continue
		}
		out, stderr, status := runApp(t, bins[app], "contract", "check", "--against", baseline)
		if status != 0 {
			t.Errorf("%s contract check --against %s: exit status %d\n%s%s", app, baseline, status, out, stderr)
			continue
		}
		t.Logf("%s", strings.TrimSpace(out))
	}
}

// TestTheCheckCanFail runs the same binaries against baselines they break,
// so that a passing TestExampleAppsKeepTheirContracts means something: an
// earlier release of the shop whose order_placed had no customer (the code
// requires it now, and events published then lack it), and a file that is
// not a contract.
func TestTheCheckCanFail(t *testing.T) {
	bins := buildApps(t, "shop")
	export, err := os.ReadFile(filepath.Join("testdata", "exports", "shop.contract.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := readExport(t, "shop")
	editTopic(c, "order_placed", func(s *schema) { removeField(s, "customer") })
	older := writeContract(t, c)

	out, _, status := runApp(t, bins["shop"], "contract", "check", "--against", older, "--format", "markdown")
	if status != 1 || !strings.Contains(out, "| ❌ | `order_placed.v1` | `customer` | `required-field-added`") ||
		!strings.Contains(out, "**orders.track-order_placed**") || !strings.Contains(out, "**payment.charge**") {
		t.Errorf("shop contract check against a release without order_placed.customer: exit status %d\n%s", status, out)
	}

	notContract := filepath.Join(t.TempDir(), "graph.json")
	if err := os.WriteFile(notContract, bytes.Replace(export, []byte(`"x-troupe-contract"`), []byte(`"x-other"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, status := runApp(t, bins["shop"], "contract", "check", "--against", notContract)
	if status != 2 || !strings.Contains(stderr, "not a troupe contract: an AsyncAPI document without x-troupe-contract") {
		t.Errorf("shop contract check against an AsyncAPI document: exit status %d\n%s", status, stderr)
	}
}
