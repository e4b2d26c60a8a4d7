package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// Kind names a change between a baseline and the code.
type Kind string

// The kinds of change. Each is compatible or breaking depending on who
// reads what (see the package documentation); the comments say what
// changed.
const (
	// TopicAdded: the program publishes a topic it did not publish.
	TopicAdded Kind = "topic-added"
	// TopicRemoved: the program no longer publishes a topic at all.
	TopicRemoved Kind = "topic-removed"
	// VersionAdded: the program publishes a new version of a topic.
	VersionAdded Kind = "version-added"
	// VersionRemoved: the program no longer publishes the version it
	// published, since it publishes another one.
	VersionRemoved Kind = "version-removed"
	// UpcasterAdded: the program reads an older version through a new
	// upcaster.
	UpcasterAdded Kind = "upcaster-added"
	// UpcasterRemoved: the program no longer reads an older version.
	UpcasterRemoved Kind = "upcaster-removed"
	// SubscriptionAdded: a new subscription reads the topic.
	SubscriptionAdded Kind = "subscription-added"
	// SubscriptionRemoved: a subscription of the program is gone.
	SubscriptionRemoved Kind = "subscription-removed"
	// FieldAdded: an optional field (omitempty or omitzero) is new.
	FieldAdded Kind = "field-added"
	// RequiredFieldAdded: a field that is always sent is new.
	RequiredFieldAdded Kind = "required-field-added"
	// FieldRemoved: a field is no longer sent.
	FieldRemoved Kind = "field-removed"
	// FieldRenamed: a field is gone and another with the same schema is
	// new, in the same object: taken for a rename (Change.From is the old
	// name).
	FieldRenamed Kind = "field-renamed"
	// FieldMissing: a consumer requires a field the producer does not
	// send, with no earlier release to say when that began.
	FieldMissing Kind = "field-missing"
	// TypeChanged: a value's JSON type, format or encoding changed.
	TypeChanged Kind = "type-changed"
	// MadeRequired: an optional field is always sent now.
	MadeRequired Kind = "made-required"
	// MadeOptional: a field that was always sent may be left out now.
	MadeOptional Kind = "made-optional"
	// MadeNullable: a value may be null now.
	MadeNullable Kind = "made-nullable"
	// MadeNonNullable: a value that could be null cannot any more.
	MadeNonNullable Kind = "made-non-nullable"
	// EnumNarrowed: a value is limited to fewer values than before.
	EnumNarrowed Kind = "enum-narrowed"
	// EnumWidened: a value may take values it could not before.
	EnumWidened Kind = "enum-widened"
	// ConstChanged: a value's one allowed value changed.
	ConstChanged Kind = "const-changed"
)

// Report is the outcome of [Check].
type Report struct {
	// App is the app checked.
	App string `json:"app"`
	// Against names the baselines, in the order given.
	Against []string `json:"against"`
	// Breaking counts the breaking changes.
	Breaking int `json:"breaking"`
	// Compatible counts the compatible changes.
	Compatible int `json:"compatible"`
	// Changes are every change, sorted by topic version, field, kind.
	Changes []Change `json:"changes"`
}

// Change is one change to one topic version.
type Change struct {
	// Topic is the topic version's wire type ("order_placed.v1").
	Topic string `json:"topic"`
	// Kind says what changed.
	Kind Kind `json:"kind"`
	// Path is the field, by dotted JSON names ("customer.email"); "" when
	// the change is to the topic version as a whole.
	Path string `json:"path,omitempty"`
	// From is the old path of a renamed field.
	From string `json:"from,omitempty"`
	// Subscription is the subscription of a subscription-added or
	// subscription-removed change, as "service.name".
	Subscription string `json:"subscription,omitempty"`
	// Detail says more of what changed ("string → integer").
	Detail string `json:"detail,omitempty"`
	// Breaking reports that some consumer breaks: Breaks names them.
	Breaking bool `json:"breaking"`
	// Why says why the change is compatible, or how to make a breaking
	// one safe.
	Why string `json:"why"`
	// Breaks are the consumers the change breaks, and what each meets.
	Breaks []Broken `json:"breaks,omitempty"`
}

// Broken is a consumer a change breaks.
type Broken struct {
	// Subscription is "service.name", with the upcaster it reads through
	// when it is one.
	Subscription string `json:"subscription"`
	// Contract is the baseline that declares it; "" for the code checked.
	Contract string `json:"contract,omitempty"`
	// Problem says what the consumer meets.
	Problem string `json:"problem"`
}

// fixFor says how to make a breaking change of kind k safe.
func fixFor(k Kind) string {
	switch k {
	case FieldRemoved:
		return "keep sending it until no consumer reads it (readers can narrow what they read with contract.Reads), or publish a new version"
	case FieldMissing:
		return "send the field, or have the consumer stop requiring it"
	case MadeOptional, MadeNullable, EnumWidened:
		return "change the consumers first, or publish a new version of the topic"
	case TopicRemoved:
		return "move its consumers to another topic first"
	case VersionRemoved:
		return "keep reading the old version with troupe.Upcast, and move the other programs' consumers to the new version first"
	case UpcasterRemoved:
		return "keep the upcaster while events of that version may remain"
	case SubscriptionAdded:
		return "read only what every producer sends, or change the producers first"
	case TopicAdded, VersionAdded, UpcasterAdded:
		return "make what is published meet what its consumers read"
	}
	return "publish a new version of the topic, with troupe.Upcast from this one"
}

// Formats are the output formats of a report: the first is the default.
var Formats = []string{"text", "json", "markdown"}

// Write writes the report in format: "text" for a terminal, "json" (the
// Report as JSON) for programs, or "markdown" for a pull-request comment.
// It fails for another format, or when w fails.
func (r *Report) Write(w io.Writer, format string) error {
	var b bytes.Buffer
	switch format {
	case "text":
		r.text(&b)
	case "json":
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	case "markdown":
		r.markdown(&b)
	default:
		return fmt.Errorf("contract: unknown report format %q: use one of %s", format, strings.Join(Formats, ", "))
	}
	_, err := w.Write(b.Bytes())
	return err
}

func (r *Report) summary() string {
	if len(r.Changes) == 0 {
		return fmt.Sprintf("%s: no changes against %s", r.App, strings.Join(r.Against, ", "))
	}
	return fmt.Sprintf("%s: %s, %s against %s", r.App, count(r.Breaking, "breaking change"), plural(r.Compatible, "compatible"), strings.Join(r.Against, ", "))
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func plural(n int, what string) string { return fmt.Sprintf("%d %s", n, what) }

// subject names what a change is about: "order_placed.v1 customer.email".
func (c Change) subject() string {
	s := c.Topic
	switch {
	case c.Path != "":
		s += " " + c.Path
	case c.Subscription != "":
		s += " " + c.Subscription
	}
	return s
}

// String sums the change up on one line: the topic version, the field or
// subscription, the kind, and whom it breaks:
//
//	order_placed.v1 customer field-removed: breaks billing.charge (billing.json)
func (c Change) String() string {
	s := c.subject() + " " + string(c.Kind)
	if len(c.Breaks) > 0 {
		who := make([]string, len(c.Breaks))
		for i, b := range c.Breaks {
			who[i] = b.who()
		}
		s += ": breaks " + strings.Join(who, ", ")
	}
	return s
}

func (b Broken) who() string {
	if b.Contract == "" {
		return b.Subscription
	}
	return b.Subscription + " (" + b.Contract + ")"
}

func (r *Report) text(w *bytes.Buffer) {
	fmt.Fprintln(w, r.summary())
	for _, c := range r.Changes {
		verdict := "compatible"
		if c.Breaking {
			verdict = "BREAKING"
		}
		line := fmt.Sprintf("%-10s  %s: %s", verdict, c.subject(), c.Kind)
		if c.Detail != "" {
			line += " (" + c.Detail + ")"
		}
		fmt.Fprintln(w, line)
		for _, b := range c.Breaks {
			fmt.Fprintf(w, "            breaks %s: %s\n", b.who(), b.Problem)
		}
		if c.Why != "" {
			prefix := ""
			if c.Breaking {
				prefix = "fix: "
			}
			fmt.Fprintf(w, "            %s%s\n", prefix, c.Why)
		}
	}
}

func (r *Report) markdown(w *bytes.Buffer) {
	title := "Event contracts: no breaking change"
	if r.Breaking > 0 {
		title = "Event contracts: " + count(r.Breaking, "breaking change")
	}
	fmt.Fprintf(w, "### %s\n\n%s.\n", title, mdEscape(r.summary()))
	if len(r.Changes) == 0 {
		return
	}
	fmt.Fprint(w, "\n| | topic | field | change | consumers it breaks, or why it is safe |\n|---|---|---|---|---|\n")
	for _, c := range r.Changes {
		mark := "✅"
		if c.Breaking {
			mark = "❌"
		}
		field := c.Path
		if field == "" {
			field = c.Subscription
		}
		change := "`" + string(c.Kind) + "`"
		if c.Detail != "" {
			change += " " + c.Detail
		}
		var why []string
		for _, b := range c.Breaks {
			why = append(why, "**"+b.who()+"**: "+b.Problem)
		}
		if c.Why != "" {
			if c.Breaking {
				why = append(why, "*fix:* "+c.Why)
			} else {
				why = append(why, c.Why)
			}
		}
		fmt.Fprintf(w, "| %s | `%s` | %s | %s | %s |\n", mark, c.Topic, mdEscape(code(field)), mdEscape(change), mdEscape(strings.Join(why, "<br>")))
	}
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

// mdEscape keeps a table cell in its cell.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

var kindOrder = []Kind{
	TopicRemoved, VersionRemoved, TopicAdded, VersionAdded, UpcasterRemoved, UpcasterAdded,
	FieldRemoved, FieldRenamed, FieldMissing, TypeChanged, RequiredFieldAdded, FieldAdded,
	MadeRequired, MadeOptional, MadeNullable, MadeNonNullable, EnumNarrowed, EnumWidened, ConstChanged,
	SubscriptionRemoved, SubscriptionAdded,
}

func sortChanges(cs []Change) {
	rank := func(k Kind) int {
		if i := slices.Index(kindOrder, k); i >= 0 {
			return i
		}
		return len(kindOrder)
	}
	sort.SliceStable(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		switch {
		case a.Topic != b.Topic:
			return a.Topic < b.Topic
		case a.Path != b.Path:
			return a.Path < b.Path
		case a.Kind != b.Kind:
			return rank(a.Kind) < rank(b.Kind)
		}
		return a.Subscription < b.Subscription
	})
}
