package contracts

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-go/troupe/contract"
	"github.com/troupe-go/troupe/topology"
)

// schemaChange is one change to an example app, made to its real export,
// with the classification it must get.
type schemaChange struct {
	name string
	app  string
	// code lists the services of the program under check, its earlier
	// release included; nil for all of the app's.
	code []string
	// others lists the services of another program of the same app (a
	// consumer in another repository), checked against as a baseline;
	// nil for none.
	others []string
	// before changes the earlier release, now the code, other the other
	// program; each starts from the export.
	before, now, other func(c *contract.Contract)
	// want lists the changes as Change.String writes them: "topic
	// [field|subscription] kind", then ": breaks" and the subscriptions
	// (with the other program's file) when it is breaking.
	want []string
	// diff is @asyncapi/diff's verdict on the pair (earlier release, code):
	// breaking, non-breaking, unclassified or none.
	diff string
}

var schemaChanges = []schemaChange{
	// In one program: its earlier release's events are still in flight, in
	// history and in dead letters, and its own handlers must read them.
	{name: "unchanged fooddelivery", app: "fooddelivery", diff: "none"},
	{name: "unchanged usermgmt", app: "usermgmt", diff: "none"},
	{name: "unchanged jobfeed", app: "jobfeed", diff: "none"},
	{name: "unchanged shop", app: "shop", diff: "none"},
	{
		name: "optional field added", app: "usermgmt",
		now:  func(c *contract.Contract) { editTopic(c, "user_registered", addOptional("locale")) },
		want: []string{"user_registered.v1 locale field-added"}, diff: "unclassified",
	},
	{
		name: "required field added, read by the app's handlers", app: "usermgmt",
		now: func(c *contract.Contract) {
			editTopic(c, "user_registered", func(s *schema) { addField(s, "locale", str(), true) })
		},
		want: []string{"user_registered.v1 locale required-field-added: breaks coupons.issue-welcome-coupon, mailer.send-welcome"}, diff: "unclassified",
	},
	{
		name: "required field added to a topic nobody reads", app: "usermgmt",
		now: func(c *contract.Contract) {
			editTopic(c, "coupon_issued", func(s *schema) { addField(s, "campaign", str(), true) })
		},
		want: []string{"coupon_issued.v1 campaign required-field-added"}, diff: "unclassified",
	},
	{
		name: "field removed from the type its handlers share", app: "usermgmt",
		now:  func(c *contract.Contract) { editTopic(c, "user_registered", remove("name")) },
		want: []string{"user_registered.v1 name field-removed"}, diff: "unclassified",
	},
	{
		name: "field renamed in place", app: "fooddelivery",
		now: func(c *contract.Contract) {
			editTopic(c, "order_placed", func(s *schema) { renameField(s, "customer", "customer_name") })
		},
		want: []string{"order_placed.v1 customer_name field-renamed: breaks order.track-order_placed, payment.charge"}, diff: "unclassified",
	},
	{
		name: "field renamed as a new version with an upcaster", app: "fooddelivery",
		now: func(c *contract.Contract) {
			old := copyOf(c)
			editTopic(c, "order_placed", func(s *schema) { renameField(s, "customer", "customer_name") })
			bump(c, "order_placed", topicOf(old, "order_placed").Schema)
		},
		want: []string{"order_placed.v1 version-removed", "order_placed.v1 upcaster-added", "order_placed.v2 version-added"},
		diff: "breaking",
	},
	{
		name: "new version without an upcaster", app: "fooddelivery",
		now:  func(c *contract.Contract) { bump(c, "order_placed", nil) },
		want: []string{"order_placed.v1 version-removed: breaks order.track-order_placed, payment.charge", "order_placed.v2 version-added"},
		diff: "breaking",
	},
	{
		name: "type changed", app: "fooddelivery",
		now:  func(c *contract.Contract) { editTopic(c, "order_placed", retype("total_cents", "string")) },
		want: []string{"order_placed.v1 total_cents type-changed: breaks order.track-order_placed, payment.charge"}, diff: "unclassified",
	},
	{
		name: "integer widened to number", app: "fooddelivery",
		now:  func(c *contract.Contract) { editTopic(c, "order_placed", retype("total_cents", "number")) },
		want: []string{"order_placed.v1 total_cents type-changed"}, diff: "unclassified",
	},
	{
		name: "field made optional", app: "shop",
		now:  func(c *contract.Contract) { editTopic(c, "order_placed", optional("customer")) },
		want: []string{"order_placed.v1 customer made-optional"}, diff: "unclassified",
	},
	{
		name: "field made required", app: "shop",
		before: func(c *contract.Contract) { editTopic(c, "order_placed", optional("customer")) },
		want:   []string{"order_placed.v1 customer made-required: breaks orders.track-order_placed, payment.charge"}, diff: "unclassified",
	},
	{
		name: "nested field removed", app: "jobfeed",
		now:  func(c *contract.Contract) { editTopic(c, "profile_created", remove("preferences.frequency")) },
		want: []string{"profile_created.v1 preferences.frequency field-removed"}, diff: "unclassified",
	},
	{
		name: "a list item's field read as a time now", app: "jobfeed",
		before: func(c *contract.Contract) { editTopic(c, "open_jobs_found", noFormat("jobs.found_at")) },
		want:   []string{"open_jobs_found.v1 jobs.found_at type-changed: breaks notification.notify, portal.view-matches"}, diff: "unclassified",
	},
	{
		name: "a list item's time read as any string now", app: "jobfeed",
		now:  func(c *contract.Contract) { editTopic(c, "open_jobs_found", noFormat("jobs.found_at")) },
		want: []string{"open_jobs_found.v1 jobs.found_at type-changed"}, diff: "unclassified",
	},
	{
		name: "object made nullable", app: "jobfeed",
		now:  func(c *contract.Contract) { editTopic(c, "profile_created", nullable("preferences")) },
		want: []string{"profile_created.v1 preferences made-nullable"}, diff: "unclassified",
	},
	{
		name: "list made non-nullable", app: "jobfeed",
		now: func(c *contract.Contract) {
			editTopic(c, "job_posted", func(s *schema) { field(s, "skills").Type = topology.SchemaType{"array"} })
		},
		want: []string{"job_posted.v1 skills made-non-nullable: breaks recommendation.match-job"}, diff: "unclassified",
	},
	{
		name: "enum narrowed", app: "shop",
		before: func(c *contract.Contract) { editTopic(c, "customer_notified", enum("channel", "email", "sms", "push")) },
		now:    func(c *contract.Contract) { editTopic(c, "customer_notified", enum("channel", "email", "sms")) },
		want:   []string{"customer_notified.v1 channel enum-narrowed: breaks orders.track-customer_notified"}, diff: "unclassified",
	},
	{
		name: "enum widened", app: "shop",
		before: func(c *contract.Contract) { editTopic(c, "customer_notified", enum("channel", "email", "sms")) },
		now:    func(c *contract.Contract) { editTopic(c, "customer_notified", enum("channel", "email", "sms", "push")) },
		want:   []string{"customer_notified.v1 channel enum-widened"}, diff: "unclassified",
	},
	{
		name: "topic added", app: "shop",
		now: func(c *contract.Contract) {
			c.Topics = append(c.Topics, contract.Topic{
				Name: "order_cancelled", Version: 1, Publishers: []string{"orders"},
				Schema: &schema{Type: topology.SchemaType{"object"}, Properties: map[string]*schema{"order_id": str()}, Required: []string{"order_id"}},
			})
		},
		want: []string{"order_cancelled.v1 topic-added"}, diff: "unclassified",
	},
	{
		name: "topic nobody reads removed", app: "usermgmt",
		now:  func(c *contract.Contract) { dropTopic(c, "welcome_mail_skipped") },
		want: []string{"welcome_mail_skipped.v1 topic-removed"}, diff: "breaking",
	},
	{
		name: "subscription added", app: "jobfeed",
		now: func(c *contract.Contract) {
			c.Subscriptions = append(c.Subscriptions, contract.Subscription{Service: "notification", Name: "announce", Topic: "job_posted", Version: 1, Reads: topicOf(c, "job_posted").Schema})
		},
		want: []string{"job_posted.v1 notification.announce subscription-added"}, diff: "non-breaking",
	},
	{
		name: "subscription removed", app: "fooddelivery",
		now: func(c *contract.Contract) {
			c.Subscriptions = slices.DeleteFunc(c.Subscriptions, func(s contract.Subscription) bool { return s.Ref() == "loyalty.add-points" })
		},
		want: []string{"restaurant_confirmed_order.v1 loyalty.add-points subscription-removed"}, diff: "breaking",
	},
	{
		name: "upcaster removed", app: "fooddelivery",
		before: func(c *contract.Contract) { bump(c, "order_placed", topicOf(c, "order_placed").Schema) },
		now:    func(c *contract.Contract) { bump(c, "order_placed", nil) },
		want:   []string{"order_placed.v1 upcaster-removed: breaks order.track-order_placed, payment.charge"}, diff: "unclassified",
	},
	{
		name: "upcaster's type no longer matches the old events", app: "fooddelivery",
		before: func(c *contract.Contract) { bump(c, "order_placed", topicOf(c, "order_placed").Schema) },
		now: func(c *contract.Contract) {
			old := copyOf(topicOf(c, "order_placed").Schema)
			renameField(old, "customer", "client")
			bump(c, "order_placed", old)
		},
		want: []string{"order_placed.v1 client field-renamed: breaks order.track-order_placed (through its upcaster from v1), payment.charge (through its upcaster from v1)"},
		diff: "unclassified",
	},

	// Another program of the app reads the topic: a consumer in another
	// repository, checked through its own export.
	{
		name: "field removed that another program reads", app: "usermgmt", others: []string{"coupons"},
		now:  func(c *contract.Contract) { editTopic(c, "user_registered", remove("email")) },
		want: []string{"user_registered.v1 email field-removed: breaks coupons.issue-welcome-coupon (usermgmt-coupons.contract.json)"}, diff: "unclassified",
	},
	{
		name: "field removed that the other program declares it does not read", app: "usermgmt", others: []string{"coupons"},
		other: func(c *contract.Contract) { declare(c, "coupons.issue-welcome-coupon", "user_id") },
		now:   func(c *contract.Contract) { editTopic(c, "user_registered", remove("email")) },
		want:  []string{"user_registered.v1 email field-removed"}, diff: "unclassified",
	},
	{
		name: "field removed, beside one the other program declares it reads", app: "usermgmt", others: []string{"coupons"},
		other: func(c *contract.Contract) { declare(c, "coupons.issue-welcome-coupon", "user_id", "email") },
		now:   func(c *contract.Contract) { editTopic(c, "user_registered", remove("name")) },
		want:  []string{"user_registered.v1 name field-removed"}, diff: "unclassified",
	},
	{
		name: "field removed that the other program declares it reads", app: "usermgmt", others: []string{"coupons"},
		other: func(c *contract.Contract) { declare(c, "coupons.issue-welcome-coupon", "user_id", "email") },
		now:   func(c *contract.Contract) { editTopic(c, "user_registered", remove("email")) },
		want:  []string{"user_registered.v1 email field-removed: breaks coupons.issue-welcome-coupon (usermgmt-coupons.contract.json)"}, diff: "unclassified",
	},
	{
		name: "integer widened to number that another program reads as an integer", app: "fooddelivery", others: []string{"loyalty"},
		now: func(c *contract.Contract) {
			editTopic(c, "restaurant_confirmed_order", retype("amount_cents", "number"))
		},
		want: []string{"restaurant_confirmed_order.v1 amount_cents type-changed: breaks loyalty.add-points (fooddelivery-loyalty.contract.json)"}, diff: "unclassified",
	},
	{
		name: "field made optional that another program requires", app: "shop", others: []string{"payment"},
		now:  func(c *contract.Contract) { editTopic(c, "order_placed", optional("customer")) },
		want: []string{"order_placed.v1 customer made-optional: breaks payment.charge (shop-payment.contract.json)"}, diff: "unclassified",
	},
	{
		name: "nested field removed that another program reads", app: "jobfeed", others: []string{"recommendation"},
		now:  func(c *contract.Contract) { editTopic(c, "profile_created", remove("preferences.frequency")) },
		want: []string{"profile_created.v1 preferences.frequency field-removed: breaks recommendation.match-profile (jobfeed-recommendation.contract.json)"}, diff: "unclassified",
	},
	{
		name: "object made nullable that another program does not accept null for", app: "jobfeed", others: []string{"portal"},
		now:  func(c *contract.Contract) { editTopic(c, "profile_created", nullable("preferences")) },
		want: []string{"profile_created.v1 preferences made-nullable: breaks portal.view-profiles (jobfeed-portal.contract.json)"}, diff: "unclassified",
	},
	{
		name: "enum widened past what another program knows", app: "shop", others: []string{"orders"},
		before: func(c *contract.Contract) { editTopic(c, "customer_notified", enum("channel", "email", "sms")) },
		other:  func(c *contract.Contract) { editTopic(c, "customer_notified", enum("channel", "email", "sms")) },
		now:    func(c *contract.Contract) { editTopic(c, "customer_notified", enum("channel", "email", "sms", "push")) },
		want:   []string{"customer_notified.v1 channel enum-widened: breaks orders.track-customer_notified (shop-orders.contract.json)"}, diff: "unclassified",
	},
	{
		name: "topic removed that another program reads", app: "usermgmt", others: []string{"coupons"},
		now:  func(c *contract.Contract) { dropTopic(c, "user_deleted") },
		want: []string{"user_deleted.v1 topic-removed: breaks coupons.revoke-coupon (usermgmt-coupons.contract.json)"}, diff: "breaking",
	},
	{
		name: "this program now requires a field the other program does not send", app: "usermgmt", code: []string{"coupons"}, others: []string{"users"},
		now: func(c *contract.Contract) {
			editTopic(c, "user_registered", func(s *schema) { addField(s, "phone", str(), true) })
		},
		want: []string{"user_registered.v1 phone field-missing: breaks coupons.issue-welcome-coupon"}, diff: "unclassified",
	},
}

func addOptional(name string) func(*schema) {
	return func(s *schema) { addField(s, name, str(), false) }
}

func remove(path string) func(*schema) { return func(s *schema) { removeField(s, path) } }

func optional(path string) func(*schema) { return func(s *schema) { setRequired(s, path, false) } }

func retype(path, to string) func(*schema) {
	return func(s *schema) { field(s, path).Type = topology.SchemaType{to} }
}

func noFormat(path string) func(*schema) {
	return func(s *schema) { field(s, path).Format = "" }
}

func nullable(path string) func(*schema) {
	return func(s *schema) {
		f := field(s, path)
		f.Type = append(slices.Clone(f.Type), "null")
	}
}

func enum(path string, values ...any) func(*schema) {
	return func(s *schema) { field(s, path).Enum = values }
}

// bump moves topic to its next version, as a new Go type with the same
// schema; with an upcaster from the old version reading old when old is
// not nil.
func bump(c *contract.Contract, topic string, old *schema) {
	tp := topicOf(c, topic)
	tp.Upcasters = nil
	if old != nil {
		tp.Upcasters = []contract.Upcaster{{From: tp.Version, Schema: old}}
	}
	tp.Version++
	for i := range c.Subscriptions {
		if s := &c.Subscriptions[i]; s.Topic == topic {
			s.Version = tp.Version
		}
	}
}

// dropTopic stops publishing a topic: the program declares it no more.
func dropTopic(c *contract.Contract, topic string) {
	c.Topics = slices.DeleteFunc(c.Topics, func(tp contract.Topic) bool { return tp.Name == topic })
	c.Subscriptions = slices.DeleteFunc(c.Subscriptions, func(s contract.Subscription) bool { return s.Topic == topic })
}

// programs makes the contracts of a case from the app's export: the
// earlier release, the code, and the other program (nil when none).
func (sc schemaChange) programs(t *testing.T) (before, now, other *contract.Contract) {
	t.Helper()
	export := readExport(t, sc.app)
	code := sc.code
	if code == nil {
		code = slices.DeleteFunc(slices.Clone(export.Services), func(s string) bool { return slices.Contains(sc.others, s) })
	}
	build := func(services []string, source string, change func(*contract.Contract)) *contract.Contract {
		c := copyOf(export)
		c.Source = source
		if change != nil {
			change(c)
		}
		only(c, services...)
		return c
	}
	before = build(code, sc.app+".contract.json", sc.before)
	now = build(code, "", sc.now)
	if sc.others != nil {
		other = build(sc.others, sc.app+"-"+strings.Join(sc.others, "-")+".contract.json", sc.other)
	}
	return before, now, other
}

// summary lists a report's changes in the form of schemaChange.want.
func summary(r *contract.Report) []string {
	var out []string
	for _, c := range r.Changes {
		out = append(out, c.String())
	}
	return out
}

// TestSchemaChangesOnTheExampleApps makes each change of schemaChanges to
// the real exports of the example apps and checks its classification, and
// that the check's exit status (breaking or not) follows.
func TestSchemaChangesOnTheExampleApps(t *testing.T) {
	if len(schemaChanges) < 25 {
		t.Fatalf("%d schema changes; the table keeps at least 25", len(schemaChanges))
	}
	breaking, compatible := 0, 0
	for _, sc := range schemaChanges {
		t.Run(sc.name, func(t *testing.T) {
			before, now, other := sc.programs(t)
			baselines := []*contract.Contract{before}
			if other != nil {
				baselines = append(baselines, other)
			}
			r, err := contract.Check(now, baselines...)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(r); !slices.Equal(got, sc.want) {
				var b strings.Builder
				_ = r.Write(&b, "text")
				t.Errorf("changes\n  %s\nwant\n  %s\nreport:\n%s", strings.Join(got, "\n  "), strings.Join(sc.want, "\n  "), b.String())
			}
			wantBreaking := slices.ContainsFunc(sc.want, func(w string) bool { return strings.Contains(w, ": breaks ") })
			if (r.Breaking > 0) != wantBreaking {
				t.Errorf("%d breaking changes, want breaking %v", r.Breaking, wantBreaking)
			}
			if wantBreaking {
				breaking++
			} else {
				compatible++
			}
		})
	}
	t.Logf("%d changes: %d breaking, %d compatible", len(schemaChanges), breaking, compatible)
}

// TestAsyncAPIDiffAgreement runs the pair (earlier release, code) of each
// schema change through @asyncapi/diff (npm, locked in
// testdata/asyncapi-diff) and sets its verdict beside troupe's. The two
// are expected to differ where troupe knows who reads what: @asyncapi/diff
// compares two documents, does not classify changes inside a payload
// schema, and calls a channel or an operation removed breaking whoever
// reads it.
func TestAsyncAPIDiffAgreement(t *testing.T) {
	dir := filepath.Join("testdata", "asyncapi-diff")
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if nodeErr != nil || npmErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but node or npm is not installed (node: %v, npm: %v): cannot run @asyncapi/diff", nodeErr, npmErr)
		}
		t.Skip("node and npm are needed to run @asyncapi/diff; install them (Debian: apt-get install nodejs npm) to run this test")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@asyncapi", "diff")); err != nil {
		if testing.Short() {
			t.Skip("-short: not running npm ci in " + dir)
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

	type pair struct {
		Name   string `json:"name"`
		Before string `json:"before"`
		After  string `json:"after"`
	}
	var pairs []pair
	ours := map[string]string{}
	for _, sc := range schemaChanges {
		before, now, other := sc.programs(t)
		baselines := []*contract.Contract{before}
		if other != nil {
			baselines = append(baselines, other)
		}
		r, err := contract.Check(now, baselines...)
		if err != nil {
			t.Fatal(err)
		}
		ours[sc.name] = "compatible"
		if r.Breaking > 0 {
			ours[sc.name] = "breaking"
		}
		// Both sides written the same way, so that only the change differs.
		pairs = append(pairs, pair{sc.name, writeContract(t, before), writeContract(t, now)})
	}
	manifest, err := json.Marshal(pairs)
	if err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(t.TempDir(), "pairs.json")
	if err := os.WriteFile(mf, manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "diff.js", mf)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node diff.js: %v", err)
	}
	var results []struct {
		Name    string       `json:"name"`
		Verdict string       `json:"verdict"`
		Changes []diffChange `json:"changes"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("diff.js output: %v\n%s", err, out)
	}
	if len(results) != len(schemaChanges) {
		t.Fatalf("diff.js answered %d pairs of %d", len(results), len(schemaChanges))
	}

	var table strings.Builder
	table.WriteString("| change | troupe | @asyncapi/diff | |\n|---|---|---|---|\n")
	counts := map[string]int{}
	for i, res := range results {
		sc := schemaChanges[i]
		if res.Name != sc.name {
			t.Fatalf("diff.js answered %q for %q", res.Name, sc.name)
		}
		if res.Verdict != sc.diff {
			var paths []string
			for _, c := range res.Changes {
				paths = append(paths, c.Type+" "+c.Path)
			}
			t.Errorf("%s: @asyncapi/diff says %s, want %s:\n  %s", sc.name, res.Verdict, sc.diff, strings.Join(paths, "\n  "))
		}
		agreement := agreement(ours[sc.name], res.Verdict)
		counts[agreement]++
		if res.Verdict == "unclassified" {
			agreement += " (in " + unclassifiedIn(res.Changes) + ")"
		}
		fmt.Fprintf(&table, "| %s | %s | %s | %s |\n", sc.name, ours[sc.name], res.Verdict, agreement)
	}
	t.Logf("troupe and @asyncapi/diff on %d changes: %d agree, %d left unclassified by @asyncapi/diff, %d differ\n%s",
		len(results), counts["agree"], counts["unclassified"], counts["differ"], table.String())
}

type diffChange struct {
	Path string `json:"path"`
	Type string `json:"type"`
}

// unclassifiedIn says where the changes @asyncapi/diff left unclassified
// are: inside payload schemas, in troupe's extensions, or elsewhere.
func unclassifiedIn(changes []diffChange) string {
	var where []string
	for _, c := range changes {
		if c.Type != "unclassified" {
			continue
		}
		w := "other"
		switch {
		case strings.Contains(c.Path, "/payload"):
			w = "payload schemas"
		case strings.Contains(c.Path, "/x-troupe-"):
			w = "x-troupe extensions"
		case strings.HasPrefix(c.Path, "/components/messages/"):
			w = "components"
		}
		if !slices.Contains(where, w) {
			where = append(where, w)
		}
	}
	slices.Sort(where)
	return strings.Join(where, ", ")
}

// agreement sets troupe's verdict beside @asyncapi/diff's.
func agreement(ours, theirs string) string {
	switch {
	case theirs == "unclassified":
		return "unclassified"
	case ours == "breaking" && theirs == "breaking",
		ours == "compatible" && (theirs == "non-breaking" || theirs == "none"):
		return "agree"
	}
	return "differ"
}
