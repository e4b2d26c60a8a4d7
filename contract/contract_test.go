package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/contract"
	"github.com/troupe-go/troupe/topology"
)

type status string

func (status) EnumValues() []any { return []any{status("placed"), status("paid")} }

type customer struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

type placedV1 struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

type placedV2 struct {
	OrderID    string   `json:"order_id"`
	TotalCents int64    `json:"total_cents"`
	Status     status   `json:"status"`
	Customer   customer `json:"customer"`
	Lines      []line   `json:"lines"`
	Note       string   `json:"note,omitempty"`
}

type line struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

type receiptSent struct {
	OrderID string `json:"order_id"`
}

// billingApp declares a small app: orders publishes order_placed v2 and
// reads v1 through an upcaster; payment reads two fields of it (declared
// with Reads); mailer reads all of it and publishes receipt_sent, which
// orders tracks.
func billingApp(extra ...func(*troupe.App, *troupe.Topic[placedV2])) *troupe.App {
	placed := troupe.NewTopic[placedV2]("order_placed", 2)
	troupe.Upcast(placed, 1, func(old placedV1) (placedV2, error) {
		return placedV2{OrderID: old.OrderID, TotalCents: int64(old.Total) * 100}, nil
	})
	sent := troupe.NewTopic[receiptSent]("receipt_sent", 1)
	app := troupe.New(troupe.Config{Name: "billing"})
	orders := app.Service("orders").Publishes(placed)
	payment := app.Service("payment")
	mailer := app.Service("mailer").Publishes(sent)
	contract.Reads(troupe.Subscribe(payment, placed, "charge", func(context.Context, troupe.Event[placedV2]) error { return nil }),
		"order_id", "total_cents", "lines.qty")
	troupe.Subscribe(mailer, placed, "receipt", func(context.Context, troupe.Event[placedV2]) error { return nil })
	troupe.Subscribe(orders, sent, "track-receipt", func(context.Context, troupe.Event[receiptSent]) error { return nil })
	for _, f := range extra {
		f(app, placed)
	}
	return app
}

func mustContract(t *testing.T, app *troupe.App) *contract.Contract {
	t.Helper()
	c, err := contract.FromApp(app)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFromApp(t *testing.T) {
	c := mustContract(t, billingApp())
	if c.App != "billing" || !slices.Equal(c.Services, []string{"mailer", "orders", "payment"}) {
		t.Errorf("app %q services %v", c.App, c.Services)
	}
	var names []string
	for _, tp := range c.Topics {
		names = append(names, tp.Type())
	}
	if !slices.Equal(names, []string{"order_placed.v2", "receipt_sent.v1"}) {
		t.Fatalf("topics %v", names)
	}
	placed := c.Topics[0]
	if !slices.Equal(placed.Publishers, []string{"orders"}) || placed.GoType != "contract_test.placedV2" {
		t.Errorf("order_placed: publishers %v, go type %q", placed.Publishers, placed.GoType)
	}
	if !reflect.DeepEqual(placed.Schema, topology.SchemaOf(reflect.TypeFor[placedV2]())) {
		t.Errorf("order_placed schema is not the type's")
	}
	if len(placed.Upcasters) != 1 || placed.Upcasters[0].From != 1 ||
		!reflect.DeepEqual(placed.Upcasters[0].Schema, topology.SchemaOf(reflect.TypeFor[placedV1]())) {
		t.Errorf("order_placed upcasters %+v, want one from v1 with placedV1's schema", placed.Upcasters)
	}

	var refs []string
	for _, s := range c.Subscriptions {
		refs = append(refs, s.Ref())
	}
	if !slices.Equal(refs, []string{"mailer.receipt", "orders.track-receipt", "payment.charge"}) {
		t.Fatalf("subscriptions %v", refs)
	}
	receipt, charge := c.Subscriptions[0], c.Subscriptions[2]
	if receipt.Declared != nil || !reflect.DeepEqual(receipt.Reads, placed.Schema) {
		t.Errorf("mailer.receipt declares %v and reads %+v; want every field of its type", receipt.Declared, receipt.Reads)
	}
	// payment.charge reads what it declared, lists stepped through, with
	// the places they have in required.
	want := `{"type":"object","properties":{"lines":{"type":["array","null"],"items":{"type":"object","properties":{"qty":{"type":"integer"}},"required":["qty"]}},"order_id":{"type":"string"},"total_cents":{"type":"integer"}},"required":["lines","order_id","total_cents"]}`
	if b, _ := json.Marshal(charge.Reads); string(b) != want {
		t.Errorf("payment.charge reads\n %s\nwant %s", b, want)
	}
	if !slices.Equal(charge.Declared, []string{"lines.qty", "order_id", "total_cents"}) || charge.Version != 2 {
		t.Errorf("payment.charge declared %v, version %d", charge.Declared, charge.Version)
	}
}

func TestReadsDeclarationErrors(t *testing.T) {
	for _, tc := range []struct {
		fields []string
		want   string
	}{
		{[]string{"order_id", "totl"}, `contract.Reads(audit.charge): field "totl": the event data has no field "totl" (it has customer, lines, note, order_id, status, total_cents)`},
		{[]string{"customer.phone"}, `contract.Reads(audit.charge): field "customer.phone": "customer" has no field "phone" (it has email, name)`},
		{[]string{"order_id.x"}, `field "order_id.x": "order_id" is a string`},
		{[]string{"customer..name"}, `field "customer..name": name fields by their JSON names`},
		{[]string{""}, `field "": name fields by their JSON names`},
	} {
		app := billingApp(func(app *troupe.App, placed *troupe.Topic[placedV2]) {
			contract.Reads(troupe.Subscribe(app.Service("audit"), placed, "charge", func(context.Context, troupe.Event[placedV2]) error { return nil }), tc.fields...)
		})
		_, err := contract.FromApp(app)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Reads(%q): FromApp error\n %v\nwant it to contain\n %s", tc.fields, err, tc.want)
		}
	}
	// Reads with no fields: the handler needs the event, not its data.
	app := billingApp(func(app *troupe.App, placed *troupe.Topic[placedV2]) {
		contract.Reads(troupe.Subscribe(app.Service("audit"), placed, "count", func(context.Context, troupe.Event[placedV2]) error { return nil }))
	})
	c := mustContract(t, app)
	if s := c.Subscriptions[0]; s.Ref() != "audit.count" || len(s.Reads.Properties) != 0 || s.Declared == nil {
		t.Errorf("audit.count reads %+v, declared %#v; want nothing of the data, declared empty", s.Reads, s.Declared)
	}
}

func TestFromAppRefusesAnInvalidDeclaration(t *testing.T) {
	app := troupe.New(troupe.Config{Name: "bad name"})
	_, err := contract.FromApp(app)
	if err == nil || !strings.Contains(err.Error(), "the declaration is invalid") {
		t.Errorf("FromApp of an app with a bad name: %v", err)
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	c := mustContract(t, billingApp())
	var b bytes.Buffer
	if err := c.Write(&b); err != nil {
		t.Fatal(err)
	}
	back, err := contract.Read(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	cj, _ := json.Marshal(c)
	bj, _ := json.Marshal(back)
	if string(cj) != string(bj) {
		t.Errorf("read back\n %s\nwrote\n %s", bj, cj)
	}
	// The file is the topology's AsyncAPI document with the extensions.
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["asyncapi"] != topology.AsyncAPIVersion || doc["x-troupe-contract"] == nil {
		t.Errorf("asyncapi %v, x-troupe-contract %v", doc["asyncapi"], doc["x-troupe-contract"])
	}
	op := doc["operations"].(map[string]any)["payment.charge"].(map[string]any)
	if op["action"] != "receive" || op["x-troupe-subscription"] == nil || !strings.Contains(op["description"].(string), "tried up to 8 times") {
		t.Errorf("operation payment.charge: %v", op)
	}
	// Written twice, the same bytes.
	var again bytes.Buffer
	if err := mustContract(t, billingApp()).Write(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), again.Bytes()) {
		t.Error("two writes of the same declaration differ")
	}
}

func TestReadRefusesWhatIsNotAContract(t *testing.T) {
	good := func() map[string]any {
		var b bytes.Buffer
		if err := mustContract(t, billingApp()).Write(&b); err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	encode := func(v any) string {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	graph := func(format string) string {
		var b bytes.Buffer
		if err := topology.FromApp(billingApp()).Render(&b, format); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	edit := func(f func(doc map[string]any)) string {
		doc := good()
		f(doc)
		return encode(doc)
	}
	channel := func(doc map[string]any, name string) map[string]any {
		return doc["channels"].(map[string]any)[name].(map[string]any)
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "not JSON"},
		{"truncated", "{\n  \"asyncapi\": \"3.0.0\",\n  \"channels\": {", "not JSON: line 3, column"},
		{"not an object", "[1, 2]", "cannot unmarshal array"},
		{"AsyncAPI without the extensions", graph("asyncapi"), "an AsyncAPI document without x-troupe-contract (the graph command's asyncapi format?)"},
		{"topology graph", graph("json"), "a topology graph"},
		{"check report", `{"app": "billing", "against": [], "breaking": 0, "compatible": 0, "changes": []}`, "a contract check report"},
		{"other JSON", `{"name": "x"}`, "a JSON object without x-troupe-contract"},
		{"newer format", edit(func(d map[string]any) { d["x-troupe-contract"].(map[string]any)["format"] = 2 }), "format 2; this troupe reads format 1"},
		{"no app", edit(func(d map[string]any) { d["x-troupe-contract"].(map[string]any)["app"] = "" }), `x-troupe-contract.app "" is not an app name`},
		{"wrong type", edit(func(d map[string]any) { d["x-troupe-contract"].(map[string]any)["services"] = "orders" }), "cannot unmarshal string"},
		{"channel without topic", edit(func(d map[string]any) { delete(channel(d, "order_placed.v2"), "x-troupe-topic") }), "channel order_placed.v2 has no x-troupe-topic"},
		{"channel of another version", edit(func(d map[string]any) {
			channel(d, "order_placed.v2")["x-troupe-topic"].(map[string]any)["version"] = 3
		}), `channel order_placed.v2: x-troupe-topic names topic "order_placed" version 3`},
		{"dangling message", edit(func(d map[string]any) {
			delete(d["components"].(map[string]any)["messages"].(map[string]any), "order_placed")
		}), `its message "#/components/messages/order_placed" is not a message with a payload`},
		{"upcaster from the future", edit(func(d map[string]any) {
			channel(d, "order_placed.v2")["x-troupe-topic"].(map[string]any)["upcasters"].([]any)[0].(map[string]any)["from"] = 2
		}), "an upcaster from version 2"},
		{"subscription without reads", edit(func(d map[string]any) {
			delete(d["operations"].(map[string]any)["payment.charge"].(map[string]any)["x-troupe-subscription"].(map[string]any), "reads")
		}), "subscription payment.charge has no reads schema"},
		{"subscription of an unknown topic", edit(func(d map[string]any) {
			d["operations"].(map[string]any)["payment.charge"].(map[string]any)["x-troupe-subscription"].(map[string]any)["version"] = 1
		}), "subscription payment.charge reads order_placed.v1, which has no channel"},
		{"subscription of an unlisted service", edit(func(d map[string]any) {
			d["x-troupe-contract"].(map[string]any)["services"] = []string{"orders", "mailer"}
		}), `belongs to service "payment", which x-troupe-contract.services does not list`},
	} {
		_, err := contract.Read(strings.NewReader(tc.in))
		if !errors.Is(err, contract.ErrNotContract) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Read error\n %v\nwant ErrNotContract containing\n %s", tc.name, err, tc.want)
		}
	}
}
