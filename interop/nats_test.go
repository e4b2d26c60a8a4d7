package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// natsURL is the NATS server the tests use: TROUPE_TEST_NATS, as for the
// transport's own tests, else the local server.
func natsURL() string {
	if u := os.Getenv("TROUPE_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// dialNATS connects a plain client to the server, for cleaning up; no
// server means the test cannot run.
func dialNATS(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURL(), nats.Name("troupe-interop-cleanup"))
	if err != nil {
		unavailable(t, "no NATS server (%v): start one with JetStream (apt-get install -y nats-server; nats-server -js), or point TROUPE_TEST_NATS at one", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// deleteNATSNamespace deletes the streams of a troupe app named ns, with
// the consumers on them.
func deleteNATSNamespace(t *testing.T, nc *nats.Conn, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsjs.DeleteNamespace(ctx, nc, ns); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// natsjsMu makes sure one test at a time installs the nats.js package.
var natsjsMu sync.Mutex

// natsjsDir returns the folder of the nats.js scripts, with the pinned
// nats package installed in it: when node_modules lacks it, or holds another
// version than package.json pins, it runs npm ci, which installs exactly
// what package-lock.json lists.
func natsjsDir(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "%s not found (%v): install Node.js with npm (on Debian: apt-get install -y nodejs npm)", tool, err)
		}
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "natsjs"))
	if err != nil {
		t.Fatal(err)
	}
	natsjsMu.Lock()
	defer natsjsMu.Unlock()
	want, err := pinnedVersion(filepath.Join(dir, "package.json"), "dependencies")
	if err != nil {
		t.Fatal(err)
	}
	have, _ := pinnedVersion(filepath.Join(dir, "node_modules", "nats", "package.json"), "")
	if have == want {
		return dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	t.Logf("installing nats %s with npm ci in %s", want, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		unavailable(t, "npm ci in %s failed (%v); it needs the npm registry, or run it there by hand:\n%s", dir, err, out)
	}
	if have, err = pinnedVersion(filepath.Join(dir, "node_modules", "nats", "package.json"), ""); err != nil || have != want {
		t.Fatalf("after npm ci, node_modules holds nats %q (%v), want %q", have, err, want)
	}
	return dir
}

// pinnedVersion reads the version of the nats package from a package.json:
// from its dependencies when key is "dependencies", else its own version.
func pinnedVersion(path, key string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var pkg struct {
		Version      string            `json:"version"`
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if key == "dependencies" {
		v := pkg.Dependencies["nats"]
		if v == "" {
			return "", fmt.Errorf("%s does not depend on nats", path)
		}
		return v, nil
	}
	return pkg.Version, nil
}

// eventSubject and eventsStream name where a troupe app named ns keeps its
// events, as package natsjs lays them out: a stream per topic.
func eventSubject(ns, wireType string) string { return "troupe." + ns + ".e." + wireType }
func eventsStream(ns, topic string) string    { return "TROUPE_" + ns + "_EVENTS@" + topic }

// TestNatsJSPublishesToTroupe has a Node.js program publish an event with
// nats.js to the events stream of a troupe app, in CloudEvents binary
// content mode with NATS headers, and checks that the app's handler gets
// every attribute and the data.
func TestNatsJSPublishesToTroupe(t *testing.T) {
	nc := dialNATS(t)
	dir := natsjsDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	ns := uniqueName("natsjs_in")
	signups := troupe.NewTopic[signup]("signup_received", 1)
	app := troupe.New(troupe.Config{Name: ns, Broker: natsURL(), HTTPAddr: "off", Logger: testLogger(t)})
	app.Topics(signups) // published from outside the app
	got := make(chan troupe.Event[signup], 8)
	troupe.Subscribe(app.Service("crm"), signups, "import", func(ctx context.Context, ev troupe.Event[signup]) error {
		got <- ev
		return nil
	})
	t.Cleanup(func() { deleteNATSNamespace(t, nc, ns) })
	startApp(t, app)

	correlation := "signup-" + ns
	p := startProc(t, ctx, dir, []string{"TROUPE_INTEROP_URL=" + natsURL()}, "node", "publish.mjs",
		"--subject", eventSubject(ns, signups.Type()),
		"--stream", eventsStream(ns, signups.Name()),
		"--source", "/crm-import/node",
		"--type", signups.Type(),
		"--correlation-id", correlation,
		"--traceparent", sampleTraceParent,
		"--data", mustJSON(t, sampleSignup),
		"--timeout", scriptTimeoutArg())
	var sent struct {
		sentEvent
		Stream    string `json:"stream"`
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
	}
	decodeLine(t, p.line(t, ctx), &sent)
	p.wait(t, ctx)
	if sent.Stream != eventsStream(ns, signups.Name()) || sent.Seq == 0 || sent.Duplicate {
		t.Errorf("JetStream acknowledged %+v; want stream %s, a sequence, no duplicate", sent, eventsStream(ns, signups.Name()))
	}

	ev := receiveID(t, ctx, got, sent.ID)
	checkReceived(t, ev, sent.sentEvent, "/crm-import/node", "signup_received.v1", correlation, "crm.import")
}

// TestNatsJSConsumesFromTroupe has a troupe handler publish an event (so it
// carries a correlation id from the edge and a causation id) and a Node.js
// program read it with a nats.js JetStream consumer on the app's events
// stream, beside troupe's own subscriber. The Node side must see every
// CloudEvents attribute as a header, Nats-Msg-Id, and the JSON data.
func TestNatsJSConsumesFromTroupe(t *testing.T) {
	nc := dialNATS(t)
	dir := natsjsDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	ns := uniqueName("natsjs_out")
	app := troupe.New(troupe.Config{Name: ns, Broker: natsURL(), HTTPAddr: "off", Logger: testLogger(t)})
	w := invoiceFlow(app, ns)
	t.Cleanup(func() { deleteNATSNamespace(t, nc, ns) })
	startApp(t, app)

	subject := eventSubject(ns, w.invoiced.Type())
	p := startProc(t, ctx, dir, []string{"TROUPE_INTEROP_URL=" + natsURL()}, "node", "consume.mjs",
		"--stream", eventsStream(ns, w.invoiced.Name()),
		"--subject", subject,
		"--timeout", scriptTimeoutArg())
	p.waitReady(t, ctx)

	want := w.run(t, ctx, app)

	var msg struct {
		Subject string              `json:"subject"`
		Stream  string              `json:"stream"`
		Headers map[string][]string `json:"headers"`
		Body    string              `json:"body"`
	}
	decodeLine(t, p.line(t, ctx), &msg)
	p.wait(t, ctx)
	t.Logf("nats.js received on %s from %s: headers %v", msg.Subject, msg.Stream, msg.Headers)

	headers := make(map[string]string, len(msg.Headers))
	for k, vs := range msg.Headers {
		if len(vs) != 1 {
			t.Errorf("header %s has values %q, want exactly one", k, vs)
		}
		if len(vs) > 0 {
			headers[k] = vs[0]
		}
	}
	// Nats-Msg-Id is JetStream's, not a CloudEvents attribute: checked and
	// taken out before the lower-case check on the rest.
	if id := headers[jetstream.MsgIDHeader]; id != want.env.ID {
		t.Errorf("%s = %q, want the event id %s", jetstream.MsgIDHeader, id, want.env.ID)
	}
	delete(headers, jetstream.MsgIDHeader)
	for k := range headers {
		if !strings.HasPrefix(k, "ce-") && k != "traceparent" {
			t.Errorf("unexpected header %s", k)
		}
	}
	checkPublished(t, headers, msg.Body, want, "ce-datacontenttype")
	if msg.Subject != subject || msg.Stream != eventsStream(ns, w.invoiced.Name()) {
		t.Errorf("read %s from stream %s, want %s from %s", msg.Subject, msg.Stream, subject, eventsStream(ns, w.invoiced.Name()))
	}
}
