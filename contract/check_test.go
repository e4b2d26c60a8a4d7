package contract_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-go/troupe/contract"
	"github.com/troupe-go/troupe/topology"
)

// clone copies a contract deeply, named source, and lets f change it.
func clone(t *testing.T, c *contract.Contract, source string, f func(*contract.Contract)) *contract.Contract {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var out contract.Contract
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	out.Source = source
	if f != nil {
		f(&out)
	}
	return &out
}

func topicOf(c *contract.Contract, name string) *contract.Topic {
	for i := range c.Topics {
		if c.Topics[i].Name == name {
			return &c.Topics[i]
		}
	}
	panic("no topic " + name)
}

func subOf(c *contract.Contract, ref string) *contract.Subscription {
	for i := range c.Subscriptions {
		if c.Subscriptions[i].Ref() == ref {
			return &c.Subscriptions[i]
		}
	}
	panic("no subscription " + ref)
}

// only keeps the services of c named, with their subscriptions and the
// topics they publish or read; topics they read but do not publish
// become external, as another program would declare them.
func only(c *contract.Contract, services ...string) {
	c.Services = services
	c.Subscriptions = slices.DeleteFunc(c.Subscriptions, func(s contract.Subscription) bool { return !slices.Contains(services, s.Service) })
	var topics []contract.Topic
	for _, tp := range c.Topics {
		tp.Publishers = slices.DeleteFunc(slices.Clone(tp.Publishers), func(p string) bool { return !slices.Contains(services, p) })
		read := slices.ContainsFunc(c.Subscriptions, func(s contract.Subscription) bool { return s.Topic == tp.Name })
		if len(tp.Publishers) > 0 || read {
			tp.External = len(tp.Publishers) == 0
			topics = append(topics, tp)
		}
	}
	c.Topics = topics
}

// editTopic changes the schema of topic name as a change to its Go type
// would: the topic's, and what each of the program's subscriptions to it
// reads unless it declared what it reads.
func editTopic(c *contract.Contract, name string, f func(*topology.Schema)) {
	f(topicOf(c, name).Schema)
	for i := range c.Subscriptions {
		if s := &c.Subscriptions[i]; s.Topic == name && s.Declared == nil {
			f(s.Reads)
		}
	}
}

// removeField drops field from a schema's properties and required.
func removeField(s *topology.Schema, field string) {
	delete(s.Properties, field)
	s.Required = slices.DeleteFunc(s.Required, func(r string) bool { return r == field })
}

// verdicts lists a report's changes, one line each.
func verdicts(r *contract.Report) []string {
	var out []string
	for _, c := range r.Changes {
		out = append(out, c.String())
	}
	return out
}

func check(t *testing.T, cur *contract.Contract, baselines ...*contract.Contract) *contract.Report {
	t.Helper()
	r, err := contract.Check(cur, baselines...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantVerdicts(t *testing.T, r *contract.Report, want ...string) {
	t.Helper()
	if got := verdicts(r); !slices.Equal(got, want) {
		var b bytes.Buffer
		_ = r.Write(&b, "text")
		t.Errorf("changes\n %s\nwant\n %s\nreport:\n%s", strings.Join(got, "\n "), strings.Join(want, "\n "), b.String())
	}
}

func TestCheckUnchangedIsClean(t *testing.T) {
	c := mustContract(t, billingApp())
	r := check(t, c, clone(t, c, "billing.json", nil))
	wantVerdicts(t, r)
	if r.Breaking != 0 || r.Compatible != 0 || !slices.Equal(r.Against, []string{"billing.json"}) {
		t.Errorf("report %+v", r)
	}
}

// Consumers decide: the same field removed is compatible when no consumer
// reads it, and breaks the consumer in another program that does.
func TestCheckKnowsWhoReadsAField(t *testing.T) {
	full := mustContract(t, billingApp())
	dropCustomer := func(c *contract.Contract) {
		editTopic(c, "order_placed", func(s *topology.Schema) { removeField(s, "customer") })
	}

	// In one program, the mailer's type loses the field with the
	// producer's: nobody reads it any more.
	before := clone(t, full, "billing.json", nil)
	now := clone(t, full, "", dropCustomer)
	wantVerdicts(t, check(t, now, before), "order_placed.v2 customer field-removed")

	// The mailer in another repository still reads it.
	before = clone(t, full, "billing.json", func(c *contract.Contract) { only(c, "orders", "payment") })
	mailer := clone(t, full, "mailer.json", func(c *contract.Contract) { only(c, "mailer") })
	now = clone(t, full, "", func(c *contract.Contract) { only(c, "orders", "payment"); dropCustomer(c) })
	r := check(t, now, before, mailer)
	wantVerdicts(t, r, "order_placed.v2 customer field-removed: breaks mailer.receipt (mailer.json)")
	if b := r.Changes[0].Breaks[0]; b.Contract != "mailer.json" || b.Problem != "reads customer, which orders no longer sends" {
		t.Errorf("broken %+v", b)
	}

	// payment reads order_id, total_cents and lines.qty (contract.Reads):
	// lines.sku may go, lines.qty may not.
	now = clone(t, full, "", func(c *contract.Contract) {
		only(c, "orders", "payment")
		removeField(topicOf(c, "order_placed").Schema.Properties["lines"].Items, "sku")
	})
	wantVerdicts(t, check(t, now, before), "order_placed.v2 lines.sku field-removed")
	now = clone(t, full, "", func(c *contract.Contract) {
		only(c, "orders", "payment")
		removeField(topicOf(c, "order_placed").Schema.Properties["lines"].Items, "qty")
	})
	wantVerdicts(t, check(t, now, before), "order_placed.v2 lines.qty field-removed: breaks payment.charge")
}

// A rename in one program breaks the program's own readers: events
// published before it carry the old name.
func TestCheckRenameBreaksOwnReadersOfOlderEvents(t *testing.T) {
	full := mustContract(t, billingApp())
	now := clone(t, full, "", func(c *contract.Contract) {
		editTopic(c, "order_placed", func(s *topology.Schema) {
			s.Properties["state"] = s.Properties["status"]
			removeField(s, "status")
			s.Required = append(s.Required, "state")
		})
	})
	r := check(t, now, clone(t, full, "billing.json", nil))
	wantVerdicts(t, r, "order_placed.v2 state field-renamed: breaks mailer.receipt")
	if c := r.Changes[0]; c.From != "status" || c.Breaks[0].Problem != "requires state, missing from the events orders published before (billing.json)" ||
		!strings.Contains(c.Why, "troupe.Upcast") {
		t.Errorf("change %+v", c)
	}
}

func TestCheckVersions(t *testing.T) {
	now := mustContract(t, billingApp()) // order_placed v2, upcaster from v1
	v1 := func(c *contract.Contract) {
		tp := topicOf(c, "order_placed")
		tp.Version, tp.Schema, tp.Upcasters = 1, tp.Upcasters[0].Schema, nil
		for i := range c.Subscriptions {
			if s := &c.Subscriptions[i]; s.Topic == "order_placed" {
				s.Version, s.Reads, s.Declared = 1, tp.Schema, nil
			}
		}
	}
	before := clone(t, now, "billing.json", v1)

	// v2 with an upcaster from v1: the program reads the events of v1
	// still around; nobody else reads v1.
	r := check(t, now, before)
	wantVerdicts(t, r, "order_placed.v1 version-removed", "order_placed.v1 upcaster-added", "order_placed.v2 version-added")
	if why := r.Changes[0].Why; !strings.Contains(why, "through the upcaster from v1 (mailer.receipt, payment.charge)") {
		t.Errorf("version-removed why: %s", why)
	}

	// Without the upcaster, the program's own subscriptions would
	// dead-letter them.
	noUp := clone(t, now, "", func(c *contract.Contract) { topicOf(c, "order_placed").Upcasters = nil })
	wantVerdicts(t, check(t, noUp, before),
		"order_placed.v1 version-removed: breaks mailer.receipt, payment.charge", "order_placed.v2 version-added")

	// Another program that reads v1 alone is left with nothing; one that
	// reads v2 too is not.
	other := clone(t, now, "audit.json", func(c *contract.Contract) {
		v1(c)
		only(c, "mailer")
		c.Services, c.Subscriptions[0].Service = []string{"audit"}, "audit"
	})
	before = clone(t, now, "billing.json", func(c *contract.Contract) { v1(c); only(c, "orders", "payment") })
	cur := clone(t, now, "", func(c *contract.Contract) { only(c, "orders", "payment") })
	r = check(t, cur, before, other)
	wantVerdicts(t, r, "order_placed.v1 version-removed: breaks audit.receipt (audit.json)", "order_placed.v1 upcaster-added", "order_placed.v2 version-added")
	if b := r.Changes[0].Breaks[0]; b.Contract != "audit.json" || b.Problem != "reads order_placed.v1, and only v2 is published now" {
		t.Errorf("broken %+v", b)
	}
	upgraded := clone(t, now, "audit.json", func(c *contract.Contract) {
		only(c, "mailer")
		c.Services, c.Subscriptions[0].Service = []string{"audit"}, "audit"
	})
	wantVerdicts(t, check(t, cur, before, upgraded), "order_placed.v1 version-removed", "order_placed.v1 upcaster-added", "order_placed.v2 version-added")

	// Dropping the upcaster later breaks the subscriptions of the topic.
	wantVerdicts(t, check(t, noUp, clone(t, now, "billing.json", nil)),
		"order_placed.v1 upcaster-removed: breaks mailer.receipt, payment.charge")

	// So does an upcaster whose type no longer reads the old events: what
	// the earlier release's upcaster read is the word on them.
	renamed := clone(t, now, "", func(c *contract.Contract) {
		old := topicOf(c, "order_placed").Upcasters[0].Schema
		old.Properties["amount"] = old.Properties["total"]
		removeField(old, "total")
		old.Required = append(old.Required, "amount")
	})
	r = check(t, renamed, clone(t, now, "billing.json", nil))
	wantVerdicts(t, r, "order_placed.v1 amount field-renamed: breaks mailer.receipt (through its upcaster from v1), payment.charge (through its upcaster from v1)")
	if why := r.Changes[0].Why; why != "make the type the upcaster from v1 decodes read the order_placed.v1 events already published" {
		t.Errorf("fix: %s", why)
	}
}

// With no earlier release, the check still compares this program with
// the others: what it publishes against what they read, and the other
// way round.
func TestCheckAgainstOtherProgramsOnly(t *testing.T) {
	full := mustContract(t, billingApp())
	mailer := clone(t, full, "mailer.json", func(c *contract.Contract) {
		only(c, "mailer")
		// The mailer reads the status as an enum that lacks "paid".
		subOf(c, "mailer.receipt").Reads.Properties["status"].Enum = []any{"placed"}
	})
	cur := clone(t, full, "", func(c *contract.Contract) { only(c, "orders", "payment") })
	r := check(t, cur, mailer)
	wantVerdicts(t, r, "order_placed.v2 status enum-widened: breaks mailer.receipt (mailer.json)")
	if b := r.Changes[0].Breaks[0]; b.Problem != `reads status as one of "placed"; what orders publishes now may send "paid"` {
		t.Errorf("problem %q", b.Problem)
	}

	// This program as the consumer: the mailer now requires a field
	// orders' contract does not promise.
	ordersProgram := clone(t, full, "orders.json", func(c *contract.Contract) { only(c, "orders", "payment") })
	mailerNow := clone(t, full, "", func(c *contract.Contract) {
		only(c, "mailer")
		s := subOf(c, "mailer.receipt").Reads
		s.Properties["coupon"] = &topology.Schema{Type: topology.SchemaType{"string"}}
		s.Required = append(s.Required, "coupon")
	})
	wantVerdicts(t, check(t, mailerNow, ordersProgram), "order_placed.v2 coupon field-missing: breaks mailer.receipt")
}

func TestCheckRefusesBadBaselines(t *testing.T) {
	c := mustContract(t, billingApp())
	other := clone(t, c, "shop.json", func(c *contract.Contract) { c.App = "shop" })
	if _, err := contract.Check(c, other); err == nil || !strings.Contains(err.Error(), `shop.json is a contract of app "shop", and this is app "billing": events of different apps never meet`) {
		t.Errorf("baseline of another app: %v", err)
	}
	a, b := clone(t, c, "a.json", nil), clone(t, c, "b.json", func(c *contract.Contract) { only(c, "payment") })
	if _, err := contract.Check(c, a, b); err == nil || !strings.Contains(err.Error(), "a.json and b.json both declare services of this program (payment): pass one earlier release of it") {
		t.Errorf("two earlier releases: %v", err)
	}
	if _, err := contract.Check(nil); err == nil {
		t.Error("Check(nil) succeeded")
	}
}

func TestReportFormats(t *testing.T) {
	full := mustContract(t, billingApp())
	before := clone(t, full, "billing.json", func(c *contract.Contract) { only(c, "orders", "payment") })
	mailer := clone(t, full, "mailer.json", func(c *contract.Contract) { only(c, "mailer") })
	now := clone(t, full, "", func(c *contract.Contract) {
		only(c, "orders", "payment")
		s := topicOf(c, "order_placed").Schema
		removeField(s, "customer")
		s.Properties["gift | wrap"] = &topology.Schema{Type: topology.SchemaType{"boolean"}}
	})
	r := check(t, now, before, mailer)

	var text bytes.Buffer
	if err := r.Write(&text, "text"); err != nil {
		t.Fatal(err)
	}
	wantText := `billing: 1 breaking change, 1 compatible against billing.json, mailer.json
BREAKING    order_placed.v2 customer: field-removed (required object)
            breaks mailer.receipt (mailer.json): reads customer, which orders no longer sends
            fix: keep sending it until no consumer reads it (readers can narrow what they read with contract.Reads), or publish a new version
compatible  order_placed.v2 gift | wrap: field-added (optional boolean)
            optional: readers of older events get the zero value, and readers that do not know it ignore it
`
	if text.String() != wantText {
		t.Errorf("text report:\n%s\nwant:\n%s", text.String(), wantText)
	}

	var md bytes.Buffer
	if err := r.Write(&md, "markdown"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"### Event contracts: 1 breaking change\n",
		"| | topic | field | change | consumers it breaks, or why it is safe |\n|---|---|---|---|---|\n",
		"| ❌ | `order_placed.v2` | `customer` | `field-removed` required object | **mailer.receipt (mailer.json)**: reads customer, which orders no longer sends<br>*fix:* keep sending it",
		"| ✅ | `order_placed.v2` | `gift \\| wrap` |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown report lacks %q:\n%s", want, md.String())
		}
	}
	if strings.Count(md.String(), "\n| ") != 3 {
		t.Errorf("markdown table rows: want a header and two changes:\n%s", md.String())
	}

	var js bytes.Buffer
	if err := r.Write(&js, "json"); err != nil {
		t.Fatal(err)
	}
	var back contract.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, r) {
		t.Errorf("JSON report read back differs:\n%s", js.String())
	}

	err := r.Write(&bytes.Buffer{}, "yaml")
	if err == nil || !strings.Contains(err.Error(), `unknown report format "yaml": use one of text, json, markdown`) {
		t.Errorf("Write yaml: %v", err)
	}
	var none bytes.Buffer
	if err := check(t, full, clone(t, full, "billing.json", nil)).Write(&none, "text"); err != nil || none.String() != "billing: no changes against billing.json\n" {
		t.Errorf("report of no changes: %q, %v", none.String(), err)
	}
}
