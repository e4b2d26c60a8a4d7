package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/contract"
	"github.com/troupe-go/troupe/topology"
)

// run runs the contract command of the billing app.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errw bytes.Buffer
	err = contract.Command(context.Background(), billingApp(), args, &out, &errw)
	return out.String(), errw.String(), err
}

// baselineFile writes the billing app's contract, changed by f, to a file.
func baselineFile(t *testing.T, name string, f func(*contract.Contract)) string {
	t.Helper()
	c := clone(t, mustContract(t, billingApp()), "", f)
	var b bytes.Buffer
	if err := c.Write(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCommandExportThenCheck(t *testing.T) {
	out, stderr, err := run(t, "export")
	if err != nil || stderr != "" {
		t.Fatalf("export: %v, stderr %q", err, stderr)
	}
	path := filepath.Join(t.TempDir(), "billing.json")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := contract.ReadFile(path)
	if err != nil || c.Source != path || len(c.Subscriptions) != 3 {
		t.Fatalf("ReadFile of the export: %+v, %v", c, err)
	}
	out, stderr, err = run(t, "check", "--against", path)
	if err != nil || stderr != "" || out != "billing: no changes against "+path+"\n" {
		t.Errorf("check of unchanged code: out %q, stderr %q, err %v", out, stderr, err)
	}
}

func TestCommandCheckExitsOnBreakingChanges(t *testing.T) {
	// Another program of the app, whose archive service requires a field
	// the code does not publish.
	mailer := baselineFile(t, "archive.json", func(c *contract.Contract) {
		only(c, "mailer")
		c.Services = []string{"archive"}
		s := &c.Subscriptions[0]
		s.Service = "archive"
		s.Reads.Properties["coupon"] = &topology.Schema{Type: topology.SchemaType{"string"}}
		s.Reads.Required = append(s.Reads.Required, "coupon")
	})
	out, stderr, err := run(t, "check", "--against", mailer, "--format", "json")
	if stderr != "" {
		t.Errorf("stderr %q", stderr)
	}
	if !errors.Is(err, contract.ErrBreaking) || !strings.Contains(err.Error(), "billing contract check: breaking changes to the event contract (1)") {
		t.Fatalf("err %v, want ErrBreaking", err)
	}
	var r contract.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("the JSON report does not decode: %v\n%s", err, out)
	}
	if r.Breaking != 1 || r.Changes[0].Kind != contract.FieldMissing || r.Changes[0].Breaks[0].Subscription != "archive.receipt" {
		t.Errorf("report %+v", r)
	}
}

func TestCommandCheckTakesSeveralBaselines(t *testing.T) {
	// Two ways to give several files: repeated --against, and files
	// after one --against, with flags after them.
	own := baselineFile(t, "billing.json", func(c *contract.Contract) { only(c, "orders", "payment") })
	other := baselineFile(t, "mailer.json", func(c *contract.Contract) {
		only(c, "mailer")
		c.Services = []string{"archive"}
		c.Subscriptions[0].Service = "archive"
	})
	for _, args := range [][]string{
		{"check", "--against", own, "--against", other, "--format", "markdown"},
		{"check", "--against", own, other, "--format=markdown"},
	} {
		out, stderr, err := run(t, args...)
		if err != nil || stderr != "" {
			t.Errorf("%q: %v, stderr %q", args, err, stderr)
			continue
		}
		// Against the earlier release (orders and payment), the mailer
		// joined this program: a new subscription; the archive program
		// reads what orders publishes: fine.
		if !strings.HasPrefix(out, "### Event contracts: no breaking change\n") || !strings.Contains(out, "against "+own+", "+other) ||
			!strings.Contains(out, "| ✅ | `order_placed.v2` | `mailer.receipt` | `subscription-added`") {
			t.Errorf("%q: report\n%s", args, out)
		}
	}
}

func TestCommandRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var graph bytes.Buffer
	if err := topology.FromApp(billingApp()).AsyncAPI(&graph); err != nil {
		t.Fatal(err)
	}
	malformed := write("malformed.json", "{\n  \"asyncapi\": \"3.0.0\",\n  \"channels\": {\n")
	asyncapi := write("asyncapi.json", graph.String())
	good := baselineFile(t, "good.json", nil)
	shop := baselineFile(t, "shop.json", func(c *contract.Contract) { c.App = "shop" })
	missing := filepath.Join(dir, "missing.json")

	for _, tc := range []struct {
		args []string
		want string // the line on stderr
	}{
		{nil, "billing contract: say export or check; run with -h for usage\n"},
		{[]string{"publish"}, "billing contract: unknown subcommand \"publish\": say export or check\n"},
		{[]string{"check"}, "billing contract check: --against FILE is required: the app's earlier export (billing contract export > FILE), or another program's\n"},
		{[]string{"check", good}, "billing contract check: unexpected argument \"" + good + "\": give baselines with --against FILE\n"},
		{[]string{"check", "--against"}, "flag needs an argument: -against\n"},
		{[]string{"check", "--against", good, "--format", "yaml"}, "billing contract check: unknown format \"yaml\": use one of text, json, markdown\n"},
		{[]string{"check", "--against", good, "--colour"}, "flag provided but not defined: -colour\n"},
		{[]string{"check", "--against", malformed}, "billing contract check: " + malformed + ": not a troupe contract: not JSON: line 4, column 1: unexpected end of JSON input\n"},
		{[]string{"check", "--against", asyncapi}, "billing contract check: " + asyncapi + ": not a troupe contract: an AsyncAPI document without x-troupe-contract (the graph command's asyncapi format?): write contracts with '<app> contract export'\n"},
		{[]string{"check", "--against", missing}, "billing contract check: open " + missing + ": no such file or directory\n"},
		{[]string{"check", "--against", shop}, "billing contract check: " + shop + " is a contract of app \"shop\", and this is app \"billing\": events of different apps never meet, so it cannot be a baseline (pass an export of billing)\n"},
		{[]string{"check", "--against", good, good}, "billing contract check: " + good + " and " + good + " both declare services of this program (mailer, orders, payment): pass one earlier release of it\n"},
		{[]string{"export", "extra"}, "billing contract export: unexpected argument \"extra\"; run with -h for usage\n"},
	} {
		out, stderr, err := run(t, tc.args...)
		if !errors.Is(err, troupe.ErrUsage) {
			t.Errorf("%q: err %v, want a usage error (exit status 2)", tc.args, err)
		}
		if !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("%q: stderr\n %q\nwant it to contain\n %q\n(stdout %q)", tc.args, stderr, tc.want, out)
		}
	}
}

func TestCommandHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"check", "-h"}, {"export", "-h"}} {
		_, stderr, err := run(t, args...)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "Usage:") {
			t.Errorf("%q: err %v, stderr %q", args, err, stderr)
		}
	}
}

func TestCommandExportFailsOnABadReadsDeclaration(t *testing.T) {
	app := billingApp(func(app *troupe.App, placed *troupe.Topic[placedV2]) {
		contract.Reads(troupe.Subscribe(app.Service("audit"), placed, "count", func(context.Context, troupe.Event[placedV2]) error { return nil }), "nope")
	})
	var out, stderr bytes.Buffer
	err := contract.Command(context.Background(), app, []string{"export"}, &out, &stderr)
	if err == nil || errors.Is(err, troupe.ErrUsage) || !strings.Contains(err.Error(), `contract.Reads(audit.count): field "nope"`) || out.Len() != 0 {
		t.Errorf("export with a bad declaration: err %v, stdout %d bytes", err, out.Len())
	}
}

func TestCommandIsRegistered(t *testing.T) {
	// The app's own command line runs it (the app writes to os.Stdout, so
	// ask for help, which goes to stderr).
	var stderr bytes.Buffer
	err := billingApp().RunCommand(context.Background(), []string{"contract", "-h"}, &stderr)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "billing contract check --against FILE") {
		t.Errorf("billing contract -h: %v\n%s", err, stderr.String())
	}
}
