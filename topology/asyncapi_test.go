package topology_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/troupe-go/troupe/topology"
)

func TestAsyncAPIGolden(t *testing.T) {
	out := render(t, topology.FromApp(smallApp()), "asyncapi")
	golden(t, "small.asyncapi.json", out)

	var doc struct {
		AsyncAPI string `json:"asyncapi"`
		Info     struct {
			Title   string `json:"title"`
			Version string `json:"version"`
		} `json:"info"`
		Channels map[string]struct {
			Address string `json:"address"`
		} `json:"channels"`
		Operations map[string]struct {
			Action  string `json:"action"`
			Channel struct {
				Ref string `json:"$ref"`
			} `json:"channel"`
		} `json:"operations"`
		Components struct {
			Messages map[string]struct {
				ContentType string          `json:"contentType"`
				Payload     topology.Schema `json:"payload"`
			} `json:"messages"`
		} `json:"components"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AsyncAPI != "3.0.0" || doc.Info.Title != "small" || doc.Info.Version == "" {
		t.Errorf("asyncapi %q, info %+v", doc.AsyncAPI, doc.Info)
	}
	if ch := doc.Channels["order-placed.v2"]; ch.Address != "order-placed.v2" {
		t.Errorf("channel order-placed.v2: %+v", ch)
	}
	wantOps := map[string]string{
		"billing.send.payment_done":   "send",
		"billing.send.payment_failed": "send",
		"billing.charge":              "receive",
		"mailer.send.receipt_sent":    "send",
		"mailer.send-receipt":         "receive",
	}
	if len(doc.Operations) != len(wantOps) {
		t.Errorf("operations %v, want %v", doc.Operations, wantOps)
	}
	for id, action := range wantOps {
		if op := doc.Operations[id]; op.Action != action {
			t.Errorf("operation %s: action %q, want %q", id, op.Action, action)
		}
	}
	if ref := doc.Operations["billing.charge"].Channel.Ref; ref != "#/channels/order-placed.v2" {
		t.Errorf("billing.charge channel %q", ref)
	}
	m := doc.Components.Messages["payment_done"]
	want := topology.Schema{
		Type:       topology.SchemaType{"object"},
		Properties: map[string]*topology.Schema{"order_id": {Type: topology.SchemaType{"string"}}},
		Required:   []string{"order_id"},
	}
	if m.ContentType != "application/json" || !reflect.DeepEqual(m.Payload, want) {
		t.Errorf("message payment_done: %+v", m)
	}
}

// TestAsyncAPIValid validates the AsyncAPI documents of the shop and of the
// small app with the AsyncAPI parser (@asyncapi/parser, from npm, pinned in
// testdata/asyncapi/package-lock.json), which checks them against the
// published AsyncAPI 3.0 JSON Schema and its rules.
func TestAsyncAPIValid(t *testing.T) {
	dir := filepath.Join("testdata", "asyncapi")
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if nodeErr != nil || npmErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but node or npm is not installed (node: %v, npm: %v): cannot validate the AsyncAPI output", nodeErr, npmErr)
		}
		t.Skip("node and npm are needed to validate the AsyncAPI output with @asyncapi/parser; install them (Debian: apt-get install nodejs npm) to run this test")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@asyncapi", "parser")); err != nil {
		if testing.Short() {
			t.Skip("-short: not running npm ci in " + dir)
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

	tmp := t.TempDir()
	var files []string
	for _, d := range []struct {
		name string
		g    *topology.Graph
	}{
		{"small.json", topology.FromApp(smallApp())},
	} {
		var b bytes.Buffer
		if err := d.g.AsyncAPI(&b); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(tmp, d.name)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	cmd := exec.Command(node, append([]string{"validate.js"}, files...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the AsyncAPI parser rejects the documents: %v\n%s", err, out)
	}
	t.Logf("@asyncapi/parser:\n%s", out)

	// The validator is not vacuous: it rejects an action AsyncAPI 3.0
	// dropped and a reference to a message that is not there.
	small, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ old, new, want string }{
		{`"action": "send"`, `"action": "publish"`, `"action"`},
		{`"#/channels/payment_done.v1/messages/payment_done"`, `"#/channels/payment_done.v1/messages/nothing"`, "nothing"},
	} {
		bad := bytes.Replace(small, []byte(c.old), []byte(c.new), 1)
		badPath := filepath.Join(tmp, "bad.json")
		if err := os.WriteFile(badPath, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(node, "validate.js", badPath)
		cmd.Dir = dir
		out, err = cmd.CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte(c.want)) {
			t.Errorf("the AsyncAPI parser accepts a document with %s (err %v):\n%s", c.new, err, out)
		}
	}
}

type schemaInner struct {
	N int `json:"n"`
}

type SchemaEmbedded struct {
	Embedded string `json:"embedded"`
	Hidden   string `json:"plain"` // hidden by the outer "plain"
}

type schemaRecursive struct {
	Name     string             `json:"name"`
	Children []*schemaRecursive `json:"children,omitempty"`
}

type schemaAll struct {
	SchemaEmbedded
	Plain      string            `json:"plain"`
	Untagged   bool              // named Untagged
	Optional   int64             `json:"optional,omitempty"`
	Zero       float64           `json:"zero,omitzero"`
	Skipped    string            `json:"-"`
	Dash       string            `json:"-,"` // named "-"
	Quoted     int               `json:"quoted,string"`
	When       time.Time         `json:"when"`
	MaybeWhen  *time.Time        `json:"maybe_when"`
	Inner      schemaInner       `json:"inner"`
	MaybeIn    *schemaInner      `json:"maybe_inner,omitempty"`
	List       []string          `json:"list"`
	Fixed      [2]uint8          `json:"fixed"`
	Bytes      []byte            `json:"bytes"`
	Labels     map[string]int    `json:"labels"`
	Anything   any               `json:"anything"`
	Raw        json.RawMessage   `json:"raw"`
	Dur        topology.Duration `json:"dur"`
	Tree       schemaRecursive   `json:"tree"`
	unexported string
}

func TestSchemaOf(t *testing.T) {
	s := func(types ...string) *topology.Schema { return &topology.Schema{Type: types} }
	inner := &topology.Schema{Type: topology.SchemaType{"object"}, Properties: map[string]*topology.Schema{"n": s("integer")}, Required: []string{"n"}}
	maybeInner := &topology.Schema{Type: topology.SchemaType{"object", "null"}, Properties: inner.Properties, Required: inner.Required}
	want := &topology.Schema{
		Type: topology.SchemaType{"object"},
		Properties: map[string]*topology.Schema{
			"embedded":    s("string"),
			"plain":       s("string"),
			"Untagged":    s("boolean"),
			"optional":    s("integer"),
			"zero":        s("number"),
			"-":           s("string"),
			"quoted":      {Type: topology.SchemaType{"string"}, Description: "a JSON integer in a string"},
			"when":        {Type: topology.SchemaType{"string"}, Format: "date-time"},
			"maybe_when":  {Type: topology.SchemaType{"string", "null"}, Format: "date-time"},
			"inner":       inner,
			"maybe_inner": maybeInner,
			"list":        {Type: topology.SchemaType{"array", "null"}, Items: s("string")},
			"fixed":       {Type: topology.SchemaType{"array"}, Items: s("integer")},
			"bytes":       {Type: topology.SchemaType{"string", "null"}, ContentEncoding: "base64"},
			"labels":      {Type: topology.SchemaType{"object", "null"}, AdditionalProperties: s("integer")},
			"anything":    {},
			"raw":         {},
			"dur":         s("string"),
			"tree": {
				Type: topology.SchemaType{"object"},
				Properties: map[string]*topology.Schema{
					"name":     s("string"),
					"children": {Type: topology.SchemaType{"array", "null"}, Items: &topology.Schema{Description: "a topology_test.schemaRecursive (recursive)"}},
				},
				Required: []string{"name"},
			},
		},
		Required: []string{"-", "Untagged", "anything", "bytes", "dur", "embedded", "fixed", "inner", "labels", "list",
			"maybe_when", "plain", "quoted", "raw", "tree", "when"},
	}
	got := topology.SchemaOf(reflect.TypeFor[schemaAll]())
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("SchemaOf(schemaAll):\n got %s\nwant %s", g, w)
	}
	if got := topology.SchemaOf(nil); !reflect.DeepEqual(got, &topology.Schema{}) {
		t.Errorf("SchemaOf(nil) = %+v, want {}", got)
	}
	// One type encodes as a string, several as an array.
	b, err := json.Marshal(&topology.Schema{Type: topology.SchemaType{"string", "null"}, Items: s("integer")})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"type":["string","null"],"items":{"type":"integer"}}` {
		t.Errorf("encoded %s", b)
	}
}

type schemaStatus string

func (schemaStatus) EnumValues() []any { return []any{schemaStatus("placed"), schemaStatus("paid")} }

type schemaLevel int

func (*schemaLevel) EnumValues() []any { return []any{schemaLevel(1), schemaLevel(2), make(chan int)} }

func TestSchemaOfEnumerated(t *testing.T) {
	type order struct {
		Status schemaStatus   `json:"status"`
		Maybe  *schemaStatus  `json:"maybe"`
		Level  schemaLevel    `json:"level"`
		Tags   []schemaStatus `json:"tags"`
	}
	got := topology.SchemaOf(reflect.TypeFor[order]())
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	// Values as JSON writes them; null joins a nullable enum; a value that
	// does not encode (the channel) is left out.
	want := `{"type":"object","properties":{` +
		`"level":{"type":"integer","enum":[1,2]},` +
		`"maybe":{"type":["string","null"],"enum":["placed","paid",null]},` +
		`"status":{"type":"string","enum":["placed","paid"]},` +
		`"tags":{"type":["array","null"],"items":{"type":"string","enum":["placed","paid"]}}},` +
		`"required":["level","maybe","status","tags"]}`
	if string(b) != want {
		t.Errorf("SchemaOf(order):\n got %s\nwant %s", b, want)
	}
	// Read back from a file, the schema is the same.
	var back topology.Schema
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Properties["status"].Enum, got.Properties["status"].Enum) {
		t.Errorf("enum read back %#v, generated %#v", back.Properties["status"].Enum, got.Properties["status"].Enum)
	}
}
