package topology_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/topology"
	"github.com/troupe-go/troupe/transport"
	"github.com/troupe-go/troupe/troupetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

type OrderPlaced struct {
	OrderID string `json:"order_id"`
}

type PaymentDone struct {
	OrderID string `json:"order_id"`
}

type ReceiptSent struct {
	OrderID string `json:"order_id"`
}

type PaymentFailed struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

type OrderPlacedV1 struct {
	ID string `json:"id"`
}

// smallApp has two services, three topics (one published from outside the
// app, with a '-' in its name), an Emits chain order-placed → charge →
// payment_done → send-receipt → receipt_sent, a subscription with
// MaxAttempts(3) that compensates with payment_failed, and a topic that
// upcasts its version 1.
func smallApp() *troupe.App {
	orderPlaced := troupe.NewTopic[OrderPlaced]("order-placed", 2)
	troupe.Upcast(orderPlaced, 1, func(v OrderPlacedV1) (OrderPlaced, error) { return OrderPlaced{OrderID: v.ID}, nil })
	paymentDone := troupe.NewTopic[PaymentDone]("payment_done", 1)
	paymentFailed := troupe.NewTopic[PaymentFailed]("payment_failed", 1)
	receiptSent := troupe.NewTopic[ReceiptSent]("receipt_sent", 1)

	app := troupe.New(troupe.Config{Name: "small"})
	app.Topics(orderPlaced)
	billing := app.Service("billing").Publishes(paymentDone, paymentFailed)
	troupe.Subscribe(billing, orderPlaced, "charge", nop[OrderPlaced],
		troupe.Emits(paymentDone), troupe.MaxAttempts(3), troupe.Backoff(time.Second, 10*time.Second), troupe.Deadline(5*time.Second),
		troupe.OnFailure(paymentFailed, func(ev troupe.Event[OrderPlaced], err error) PaymentFailed {
			return PaymentFailed{OrderID: ev.Data.OrderID, Reason: err.Error()}
		}))
	mailer := app.Service("mailer").Publishes(receiptSent)
	troupe.Subscribe(mailer, paymentDone, "send-receipt", nop[PaymentDone], troupe.Emits(receiptSent))
	mailer.HandleFunc("GET /receipts/{id}", nil)
	mailer.HandleFunc("POST /receipts", nil)
	return app
}

func nop[T any](context.Context, troupe.Event[T]) error { return nil }

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func render(t *testing.T, g *topology.Graph, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := g.Render(&b, format); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestValidSmallApp(t *testing.T) {
	if err := smallApp().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMermaidGolden(t *testing.T) {
	golden(t, "small.mmd", render(t, topology.FromApp(smallApp()), "mermaid"))
}

func TestDOTGolden(t *testing.T) {
	out := render(t, topology.FromApp(smallApp()), "dot")
	golden(t, "small.dot", out)
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Log("graphviz dot not installed: not checking that the DOT parses")
		return
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = bytes.NewReader(out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dot -Tsvg: %v\n%s", err, b)
	}
}

func TestJSON(t *testing.T) {
	out := render(t, topology.FromApp(smallApp()), "json")
	golden(t, "small.json", out)

	var g topology.Graph
	if err := json.Unmarshal(out, &g); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&g, topology.FromApp(smallApp())) {
		t.Errorf("JSON does not decode into the same graph:\n%s", out)
	}
	// The field names are part of the format: check them on the raw JSON.
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"app", "services", "topics", "subscriptions", "deadLetters", "edges"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON has no field %q", k)
		}
	}
	sub := raw["subscriptions"].([]any)[0].(map[string]any)
	want := map[string]any{
		"id": "subscription:billing.charge", "service": "billing", "name": "charge", "topic": "order-placed",
		"emits":        []any{"payment_done"},
		"compensation": "payment_failed",
		"retry":        map[string]any{"maxAttempts": 3.0, "minBackoff": "1s", "maxBackoff": "10s", "deadline": "5s"},
		"deadLetters":  "dead-letters:billing.charge",
	}
	if !reflect.DeepEqual(sub, want) {
		t.Errorf("subscription billing.charge:\n got %v\nwant %v", sub, want)
	}
	topic := raw["topics"].([]any)[0].(map[string]any)
	wantTopic := map[string]any{
		"id": "topic:order-placed", "name": "order-placed", "version": 2.0, "versions": []any{1.0, 2.0}, "type": "order-placed.v2",
		"goType": "topology_test.OrderPlaced", "goPackage": "github.com/troupe-go/troupe/topology_test",
		"schema": map[string]any{
			"type": "object", "properties": map[string]any{"order_id": map[string]any{"type": "string"}},
			"required": []any{"order_id"},
		},
		"publishers": []any{"external"}, "external": true,
	}
	if !reflect.DeepEqual(topic, wantTopic) {
		t.Errorf("topic order-placed:\n got %v\nwant %v", topic, wantTopic)
	}
}

func TestEdges(t *testing.T) {
	g := topology.FromApp(smallApp())
	has := func(from, to string, kind topology.EdgeKind, attempts int) {
		t.Helper()
		for _, e := range g.Edges {
			if e == (topology.Edge{From: from, To: to, Kind: kind, Attempts: attempts}) {
				return
			}
		}
		t.Errorf("no %s edge %s → %s (attempts %d) in %v", kind, from, to, attempts, g.Edges)
	}
	has("external", "topic:order-placed", topology.Publishes, 0)
	has("service:billing", "topic:payment_done", topology.Publishes, 0)
	has("topic:order-placed", "subscription:billing.charge", topology.Delivers, 0)
	has("subscription:billing.charge", "service:billing", topology.HandledBy, 0)
	has("subscription:billing.charge", "topic:payment_done", topology.Emits, 0)
	has("subscription:billing.charge", "dead-letters:billing.charge", topology.DeadLetters, 3)
	has("subscription:billing.charge", "topic:payment_failed", topology.Compensates, 0)
	has("service:billing", "topic:payment_failed", topology.Publishes, 0)
	has("subscription:mailer.send-receipt", "dead-letters:mailer.send-receipt", topology.DeadLetters, transport.DefaultMaxAttempts)
	if len(g.Edges) != 13 {
		t.Errorf("%d edges, want 13: %v", len(g.Edges), g.Edges)
	}
}

// Two builds of the same declaration render byte for byte the same.
func TestDeterministic(t *testing.T) {
	for _, f := range topology.Formats {
		a := render(t, topology.FromApp(smallApp()), f)
		for range 20 {
			if b := render(t, topology.FromApp(smallApp()), f); !bytes.Equal(a, b) {
				t.Fatalf("%s output differs between runs", f)
			}
		}
	}
}

func TestCommand(t *testing.T) {
	app := smallApp()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "flowchart LR\n"},
		{[]string{"--format", "mermaid"}, "flowchart LR\n"},
		{[]string{"--format=dot"}, "digraph \"small\" {\n"},
		{[]string{"-format", "json"}, "{\n  \"app\": \"small\","},
		{[]string{"--format", "asyncapi"}, "{\n  \"asyncapi\": \"3.0.0\","},
	} {
		var out, errOut bytes.Buffer
		if err := topology.Command(context.Background(), app, tc.args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !strings.HasPrefix(out.String(), tc.want) || errOut.Len() != 0 {
			t.Errorf("%v: stdout %q, stderr %q", tc.args, out.String(), errOut.String())
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "svg"}, "small graph: unknown format \"svg\": use one of mermaid, dot, json, asyncapi\n"},
		{[]string{"extra"}, "small graph: unexpected argument \"extra\"; run with -h for usage\n"},
	} {
		var out, errOut bytes.Buffer
		err := topology.Command(context.Background(), app, tc.args, &out, &errOut)
		if err == nil || out.Len() != 0 || errOut.String() != tc.want {
			t.Errorf("%v: err %v, stdout %q, stderr %q; want stderr %q", tc.args, err, out.String(), errOut.String(), tc.want)
		}
	}
}

// A running app's graph draws what a handler was seen publishing without
// declaring it.
func TestUndeclaredEdgesOfARunningApp(t *testing.T) {
	placed := troupe.NewTopic[OrderPlaced]("order_placed", 1)
	paid := troupe.NewTopic[PaymentDone]("payment_done", 1)
	app := troupe.New(troupetest.Config(t, troupe.Config{Name: "undeclared"}))
	app.Topics(placed)
	billing := app.Service("billing").Publishes(paid)
	troupe.Subscribe(billing, placed, "charge", func(ctx context.Context, ev troupe.Event[OrderPlaced]) error {
		return troupe.Publish(ctx, paid, PaymentDone{OrderID: ev.Data.OrderID}) // no troupe.Emits
	})
	seen := troupetest.Observe(t, app, paid)
	troupetest.Start(t, app)
	if err := troupe.Publish(troupe.WithCorrelationID(app.Context(context.Background()), "o-1"), placed, OrderPlaced{OrderID: "1"}); err != nil {
		t.Fatal(err)
	}
	seen.WaitCorrelation(t, "o-1")
	g := topology.FromApp(app)
	want := topology.Edge{From: "subscription:billing.charge", To: "topic:payment_done", Kind: topology.Undeclared}
	if !slices.Contains(g.Edges, want) {
		t.Errorf("no undeclared edge %v in %v", want, g.Edges)
	}
	for _, s := range g.Services {
		if strings.HasPrefix(s.Name, "troupetest-") {
			t.Errorf("graph draws the test kit's service %s", s.Name)
		}
	}
	var b strings.Builder
	if err := g.Mermaid(&b); err != nil || !strings.Contains(b.String(), "-.->|undeclared|") {
		t.Errorf("mermaid lacks the undeclared edge (%v):\n%s", err, b.String())
	}
}
