package shop_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/shop/shop"
	"github.com/troupe-go/troupe/topology"
)

// buildShop builds the shop example's binary, which has the graph command
// of package topology.
func buildShop(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "shop")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/troupe-go/troupe/examples/shop")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runShop runs the binary in an empty directory, so that it would be seen
// if the command opened the embedded broker (which creates .troupe there).
func runShop(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TROUPE_BROKER=", "TROUPE_DATA=", "SHOP_APP_NAME=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%v left files in its working directory: %v", args, entries)
	}
	return out.String(), errOut.String(), code
}

func TestShopGraphCommand(t *testing.T) {
	bin := buildShop(t)
	app := shop.NewApp(troupe.Config{}, nil)

	out, errOut, code := runShop(t, bin, "graph", "--format", "mermaid")
	if code != 0 || errOut != "" {
		t.Fatalf("shop graph: exit %d, stderr %q", code, errOut)
	}
	if !strings.HasPrefix(out, "flowchart LR\n") {
		t.Fatalf("shop graph does not print a flowchart:\n%s", out)
	}
	var want []string
	for _, s := range app.Services() {
		want = append(want, `["`+s.Name())
		for _, t := range s.Topics() {
			want = append(want, `(["`+t.Type()+`"])`)
		}
	}
	if len(want) != 14 {
		t.Fatalf("the shop has %d services and topics, want 5 services and 9 topics", len(want))
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("shop graph has no node %s:\n%s", w, out)
		}
	}
	var inProcess bytes.Buffer
	if err := topology.FromApp(app).Mermaid(&inProcess); err != nil {
		t.Fatal(err)
	}
	if out != inProcess.String() {
		t.Errorf("the binary's graph differs from FromApp's:\n%s\n---\n%s", out, inProcess.String())
	}

	if out, _, code := runShop(t, bin, "graph"); code != 0 || out != inProcess.String() {
		t.Errorf("shop graph without --format: exit %d, output differs from mermaid: %v", code, out != inProcess.String())
	}
	for _, f := range []string{"dot", "json", "asyncapi"} {
		if out, errOut, code := runShop(t, bin, "graph", "--format", f); code != 0 || errOut != "" || out == "" {
			t.Errorf("shop graph --format %s: exit %d, stderr %q, %d bytes", f, code, errOut, len(out))
		}
	}

	out, errOut, code = runShop(t, bin, "graph", "--format", "svg")
	if code != 2 || out != "" || errOut != "shop graph: unknown format \"svg\": use one of mermaid, dot, json, asyncapi\n" {
		t.Errorf("shop graph --format svg: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = runShop(t, bin, "-h")
	// Other commands the shop imports (contract) may be listed too.
	if _, commands, _ := strings.Cut(errOut, "Commands:\n"); code != 0 || !strings.Contains(commands, "\n  graph ") && !strings.HasPrefix(commands, "  graph ") {
		t.Errorf("shop -h: exit %d, does not list the graph command:\n%s", code, errOut)
	}
}
